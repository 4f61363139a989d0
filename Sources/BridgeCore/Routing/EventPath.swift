/// A dotted path into the event's JSON, such as `data.from.emailAddress.address`.
///
/// Keys that themselves hold dots (`resourceData.@odata.type`) are found by trying the longest
/// run of segments first. Crossing an array looks into every element. `subscription` alone means
/// `subscription.name`.
public struct EventPath: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let segments: [String]

    public init(_ text: String) {
        self.text = text
        let segments = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        self.segments = segments == ["subscription"] ? ["subscription", "name"] : segments
    }

    public var description: String { text }

    /// The scalar texts found at this path (empty when it leads nowhere or to an object).
    public func values(in event: JSONValue) -> [String] {
        var results: [String] = []
        collect(event, from: 0, into: &results)
        return results
    }

    private func collect(_ value: JSONValue, from index: Int, into results: inout [String]) {
        if index == segments.count {
            switch value {
            case .array(let elements): for element in elements { if let text = element.scalarText { results.append(text) } }
            default: if let text = value.scalarText { results.append(text) }
            }
            return
        }
        switch value {
        case .object(let object):
            // Longest key first, so `@odata.type` beats `@odata` followed by `type`.
            var length = segments.count - index
            while length >= 1 {
                let key = length == 1 ? segments[index] : segments[index..<(index + length)].joined(separator: ".")
                if let child = object[key] {
                    collect(child, from: index + length, into: &results)
                    return
                }
                length -= 1
            }
        case .array(let elements):
            if let position = Int(segments[index]), position >= 0, position < elements.count {
                collect(elements[position], from: index + 1, into: &results)
            } else {
                for element in elements { collect(element, from: index, into: &results) }
            }
        default:
            return
        }
    }
}

extension EventPath {
    /// The event's top-level fields (SPEC section 6), in their order: what a path may start with.
    public static let eventFields = [
        "id", "receivedAt", "subscription", "changeType", "lifecycleEvent", "resource", "resourceData", "tenantId", "data", "resync",
    ]
    /// The fields of the event's `subscription` object.
    public static let subscriptionFields = ["name", "id", "resource"]
    /// Fields whose content comes from Graph or the fetched item: any path below them may exist.
    static let openFields: Set<String> = ["data", "resourceData"]

    /// Why this path can lead to nothing in any event (its first segment is no field of the event,
    /// a `subscription.` path names no field of it, or it goes below a single value), with the
    /// closest valid spelling that `suggest` (given the misspelt word and the candidates) finds;
    /// nil when the path can match. Paths under `data.` and `resourceData.` are never questioned.
    public func problem(suggest: (String, [String]) -> String?) -> String? {
        let segments = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let first = segments[0]
        let rest = segments.dropFirst().map { "." + $0 }.joined()
        guard Self.eventFields.contains(first) else {
            var message = "'\(text)' is not a path into the event: it has no field '\(first)'"
            if let close = suggest(first, Self.eventFields) {
                message += " (did you mean '\(close)\(rest)'?)"
            } else {
                message += " (did you mean 'data.\(text)'?)"
            }
            return message + "; the event's fields are \(Self.eventFields.joined(separator: ", "))"
        }
        guard segments.count > 1, !Self.openFields.contains(first) else { return nil }
        if first == "subscription" {
            let field = segments[1]
            guard !Self.subscriptionFields.contains(field) || segments.count > 2 else { return nil }
            if Self.subscriptionFields.contains(field) {
                return "'\(text)' is not a path into the event: subscription.\(field) is a single value, not an object"
            }
            var message = "'\(text)' is not a path into the event: subscription has no field '\(field)'"
            if let close = suggest(field, Self.subscriptionFields) { message += " (did you mean 'subscription.\(close)'?)" }
            return message + "; its fields are \(Self.subscriptionFields.joined(separator: ", "))"
        }
        return "'\(text)' is not a path into the event: \(first) is a single value, not an object"
    }
}
