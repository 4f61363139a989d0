import Foundation

/// A subscription `resource` (or a Graph request path) read the way the simulator matches it:
/// leading `/` and the query dropped, segments lowercased, `name('x')` read as `name/x`.
struct ResourcePath: Sendable, Equatable {
    /// Lowercased segments, e.g. `["users", "alice@contoso.com", "mailfolders", "inbox", "messages"]`.
    let segments: [String]
    /// The query part (e.g. `$select=Subject`), if any.
    let query: String?

    init(_ resource: String) {
        var text = Substring(resource)
        while text.hasPrefix("/") { text = text.dropFirst() }
        var query: String?
        if let mark = text.firstIndex(of: "?") {
            query = String(text[text.index(after: mark)...])
            text = text[..<mark]
        }
        var segments: [String] = []
        for raw in text.split(separator: "/", omittingEmptySubsequences: true) {
            let segment = raw.removingPercentEncoding ?? String(raw)
            if let open = segment.firstIndex(of: "("), segment.hasSuffix(")") {
                segments.append(segment[..<open].lowercased())
                var argument = segment[segment.index(after: open)..<segment.index(before: segment.endIndex)]
                if argument.hasPrefix("'"), argument.hasSuffix("'"), argument.count >= 2 {
                    argument = argument.dropFirst().dropLast()
                }
                segments.append(argument.lowercased())
            } else {
                segments.append(segment.lowercased())
            }
        }
        self.segments = segments
        self.query = query
    }

    /// `$select` names from the query, lowercased; nil when there's no `$select`.
    var selectedProperties: [String]? {
        guard let query else { return nil }
        for pair in FormEncoding.decode(query) where pair.name.lowercased() == "$select" {
            return pair.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        }
        return nil
    }

    /// Where a mailbox path points.
    enum MailboxTarget: Equatable {
        /// `me`: the caller (or the subscription's creator).
        case me
        /// `users/{id|upn}`, lowercased.
        case user(String)
    }

    /// The mailbox and the rest of the path, for `me/...` and `users/{x}/...`.
    var mailbox: (target: MailboxTarget, rest: ArraySlice<String>)? {
        if segments.first == "me" { return (.me, segments.dropFirst()) }
        if segments.first == "users", segments.count >= 2 { return (.user(segments[1]), segments.dropFirst(2)) }
        return nil
    }

    /// For message collections: the mailbox and the folder (nil: every folder).
    /// `{mailbox}/messages` or `{mailbox}/mailfolders/{folder}/messages`.
    var messageCollection: (target: MailboxTarget, folder: String?)? {
        guard let (target, rest) = mailbox else { return nil }
        let parts = Array(rest)
        if parts == ["messages"] { return (target, nil) }
        if parts.count == 3, parts[0] == "mailfolders", parts[2] == "messages" { return (target, parts[1]) }
        return nil
    }

    /// What kind of resource this is, for its lifetime limit (graph-protocol 1.3).
    var kind: ResourceKind {
        if let (_, rest) = mailbox {
            guard let first = rest.first else { return .directory }  // users/{id}
            switch first {
            case "messages", "mailfolders", "events", "calendar", "calendars", "contacts", "contactfolders": return .outlook
            case "drive": return .drive
            case "todo": return .todoTask
            case "chats", "onlinemeetings": return .teams
            case "presence": return .presence
            default: return .unsupported
            }
        }
        switch segments.first {
        case "users": return .directory
        case "groups":
            return segments.contains("conversations") || segments.contains("threads") ? .groupConversation : .directory
        case "drives", "sites": return .drive
        case "security": return .securityAlert
        case "teams", "chats", "appcatalogs":
            return segments.contains("schedule") ? .shifts : .teams
        case "communications":
            if segments.contains("callrecords") { return .callRecord }
            if segments.contains("presences") { return .presence }
            return .teams
        case "print": return .print
        case "solutions": return .teams  // approvals
        default: return .unsupported
        }
    }
}

/// Resource families with their own maximum subscription lifetime.
enum ResourceKind: Sendable {
    case outlook, drive, directory, securityAlert, teams, callRecord, groupConversation, print, todoTask, presence, shifts, unsupported

    /// Maximum lifetime in minutes (graph-protocol 1.3); Outlook with resource data: 1 day.
    func maximumMinutes(includeResourceData: Bool) -> Int {
        switch self {
        case .outlook: return includeResourceData ? 1440 : 4230
        case .drive: return 42_300
        case .directory: return 41_760
        case .securityAlert: return 43_200
        case .teams: return 4320
        case .callRecord, .groupConversation, .print, .todoTask: return 4230
        case .presence: return 60
        case .shifts: return 360
        case .unsupported: return 0
        }
    }
}
