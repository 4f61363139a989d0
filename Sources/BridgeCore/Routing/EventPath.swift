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
