import BridgeCore

/// Which subscription resources Graph's delta query covers, and the paths a delta resync uses.
///
/// Supported (mailbox = `me` or `users/{id|upn}`; `name('x')` is read as `name/x`):
/// - messages of one folder: `{mailbox}/mailFolders/{folder}/messages` (Graph has no delta over
///   all of a mailbox's messages);
/// - events: `{mailbox}/events`, `{mailbox}/calendar/events`, `{mailbox}/calendars/{id}/events`;
/// - contacts: `{mailbox}/contacts`, `{mailbox}/contactFolders/{id}/contacts`;
/// - `users`, `groups`;
/// - drive items: `drives/{id}/root`, `{mailbox}/drive/root`, `sites/{id}/drive/root`.
///
/// The delta query is the resource's path (its query left out) followed by `/delta`.
public enum DeltaResource {
    /// Why `resource` cannot be resynced with delta; nil when it can.
    public static func problem(_ resource: String) -> String? {
        let segments = normalizedSegments(resource)
        if isSupported(segments) { return nil }
        let rest = mailboxRest(segments)
        if rest == ["messages"] {
            return "needs the messages of one folder (Graph's delta query works per folder): e.g. users/{id}/mailFolders('Inbox')/messages"
        }
        return "is not supported for resource \(resource): delta covers the messages of a folder, events, contacts, users, groups and drive items"
    }

    /// The path of the first delta query for `resource` (relative to the Graph base, leading `/`).
    public static func deltaPath(for resource: String) -> String {
        "/" + basePath(resource) + "/delta"
    }

    /// The resource path an item of the delta answer is named by in a resync event: the
    /// collection's path and the item id (`users/{id}` for users; `drives/{id}/items/{item}` for a drive).
    public static func itemResource(subscription resource: String, id: String) -> String {
        let base = basePath(resource)
        let segments = normalizedSegments(resource)
        if segments.last == "root" {
            let parent = base.split(separator: "/").dropLast().joined(separator: "/")
            return parent + "/items/" + id
        }
        return base + "/" + id
    }

    /// `resource` without its query and the slashes around it, as written.
    static func basePath(_ resource: String) -> String {
        var path = Substring(resource.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        while path.hasPrefix("/") { path = path.dropFirst() }
        while path.hasSuffix("/") { path = path.dropLast() }
        return String(path)
    }

    /// Lowercased segments with `name('x')` read as `name/x`.
    static func normalizedSegments(_ resource: String) -> [String] {
        var segments: [String] = []
        for raw in basePath(resource).split(separator: "/") {
            let segment = raw.lowercased()
            if let open = segment.firstIndex(of: "("), segment.hasSuffix(")") {
                segments.append(String(segment[..<open]))
                var argument = segment[segment.index(after: open)..<segment.index(before: segment.endIndex)]
                if argument.hasPrefix("'"), argument.hasSuffix("'"), argument.count >= 2 { argument = argument.dropFirst().dropLast() }
                segments.append(String(argument))
            } else {
                segments.append(segment)
            }
        }
        return segments
    }

    /// The segments after `me` or `users/{id}`; nil for other paths.
    static func mailboxRest(_ segments: [String]) -> [String]? {
        if segments.first == "me" { return Array(segments.dropFirst()) }
        if segments.first == "users", segments.count >= 2 { return Array(segments.dropFirst(2)) }
        return nil
    }

    static func isSupported(_ segments: [String]) -> Bool {
        if segments == ["users"] || segments == ["groups"] { return true }
        if segments.count == 3, segments[0] == "drives", segments[2] == "root" { return true }
        if segments.count == 4, segments[0] == "sites", segments[2] == "drive", segments[3] == "root" { return true }
        guard let rest = mailboxRest(segments) else { return false }
        switch rest.count {
        case 1: return rest[0] == "events" || rest[0] == "contacts"
        case 2: return rest == ["calendar", "events"] || rest == ["drive", "root"]
        case 3:
            return (rest[0] == "mailfolders" && rest[2] == "messages") || (rest[0] == "calendars" && rest[2] == "events")
                || (rest[0] == "contactfolders" && rest[2] == "contacts")
        default: return false
        }
    }
}
