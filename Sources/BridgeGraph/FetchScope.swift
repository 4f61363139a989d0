/// Where `fetch:` may read for a notification: only inside the subscription's own resource, so the
/// app's bearer token never reaches a path a notification names outside it (a forged or mistaken
/// `resource` could otherwise read another mailbox into the sinks).
///
/// Two shapes are inside:
/// - a path under the subscription's resource (case-insensitive), e.g. `users/{id}/messages/{m}`
///   for a subscription on `users/{id}/messages`;
/// - an Outlook item, which Graph names by the mailbox's object id and without the folder
///   (`Users/{guid}/Messages/{m}` for a subscription on `users/alice@contoso.com/mailFolders('Inbox')/messages`).
///   The mailbox in the path read is then the subscription's own, as written in `bridge.yaml`, and
///   only the item id comes from the notification: `users/alice@contoso.com/messages/{m}`.
///
/// Everything else, and any path holding `..`, `?`, `#`, `%`, a backslash, an empty segment or a
/// character outside printable ASCII, is refused: the event is routed without `data`.
public enum FetchScope {
    public enum Refusal: String, Error, Sendable {
        /// The notification's resource is not inside the subscription's.
        case outside
        /// The path could escape its place (`..`, a query, an encoded character).
        case unsafe
    }

    /// Outlook collections whose items Graph names `Users/{id}/{Collection}/{item}`.
    static let outlookCollections: Set<String> = ["messages", "events", "contacts"]

    /// The path to read for `resource`, from a notification of a subscription on `subscriptionResource`.
    public static func path(for resource: String, subscription subscriptionResource: String) -> Result<String, Refusal> {
        guard isSafe(resource) else { return .failure(.unsafe) }
        let subscriptionPath = subscriptionResource.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let base = subscriptionPath.trimmingSlashes
        guard !base.isEmpty else { return .failure(.outside) }
        let lowered = resource.lowercased()
        let loweredBase = base.lowercased()
        if lowered == loweredBase || lowered.hasPrefix(loweredBase + "/") {
            return .success(resource)
        }
        return outlookItem(resource, subscription: base).map(Result.success) ?? .failure(.outside)
    }

    /// `users/{who}/{collection}/{item}` read in the subscription's own mailbox, when the
    /// subscription is on that collection (of the mailbox, or of one of its folders).
    private static func outlookItem(_ resource: String, subscription: String) -> String? {
        let parts = resource.split(separator: "/").map(String.init)
        guard parts.count == 4, parts[0].lowercased() == "users" else { return nil }
        let collection = parts[2].lowercased()
        guard outlookCollections.contains(collection) else { return nil }
        let own = subscription.split(separator: "/").map(String.init)
        guard own.last?.lowercased() == collection else { return nil }
        let owner: String
        if own.count >= 2, own[0].lowercased() == "users" {
            owner = own[0] + "/" + own[1]
        } else if own.count >= 1, own[0].lowercased() == "me" {
            owner = own[0]
        } else {
            return nil
        }
        return "\(owner)/\(collection)/\(parts[3])"
    }

    static func isSafe(_ path: String) -> Bool {
        guard !path.isEmpty, !path.contains(".."), !path.hasPrefix("/") else { return false }
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "\\"): return false
            case 0x21...0x7E: continue
            default: return false
            }
        }
        return !path.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty }
    }
}

extension String {
    fileprivate var trimmingSlashes: String {
        var text = Substring(self)
        while text.hasPrefix("/") { text = text.dropFirst() }
        while text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }
}
