import Foundation
import Synchronization

/// The delta query's state: every change to a message in order (a message's last change decides
/// whether a delta shows it, and as `@removed` when it was a deletion), the token generation, the
/// page size, and the switch that drops notifications (changes Graph "missed").
struct DeltaLog: Sendable {
    struct Change: Sendable {
        var messageID: String
        var userID: String
        var folder: String
        var deleted: Bool
    }

    /// Change number n is `changes[n - 1]`; a deltaLink remembers the number it has seen up to.
    var changes: [Change] = []
    /// Tokens of an older generation are answered `410 SyncStateNotFound`.
    var generation = 1
    /// Items per page unless the request says `Prefer: odata.maxpagesize=N` (Graph's default for messages is 10).
    var pageSize = 10
    /// While true, changes are recorded (the delta sees them) but notify nobody.
    var dropsNotifications = false
}

/// Delta queries on messages: `GET {mailbox}/messages/delta` and
/// `GET {mailbox}/mailFolders/{folder}/messages/delta`, as Graph answers them:
/// - no token: every message of the collection (paged), then `@odata.deltaLink`;
/// - `$deltatoken`: the messages changed since that link (their current state), and
///   `{"id", "@removed": {"reason": "deleted"}}` for deleted ones, then a new `@odata.deltaLink`;
/// - more items than a page: `@odata.nextLink` with a `$skiptoken`;
/// - a token from before ``expireDeltaTokens()`` (or one the simulator never issued): `410` with
///   `SyncStateNotFound`.
///
/// Simplified: `$select` is ignored (whole messages are returned); a message changed several
/// times appears once, in its current state; a token never expires by age.
extension GraphSimulator {
    // MARK: Swift API

    /// While `true`, message changes notify no subscription (as when Graph misses notifications);
    /// delta queries still see them. Pair it with ``sendLifecycleEvent(_:subscriptionID:)`` and `.missed`.
    public var dropsNotifications: Bool {
        get { state.withLock { $0.delta.dropsNotifications } }
        set { state.withLock { $0.delta.dropsNotifications = newValue } }
    }

    /// Items per delta page when the request asks for no `odata.maxpagesize`.
    public var deltaPageSize: Int {
        get { state.withLock { $0.delta.pageSize } }
        set { state.withLock { $0.delta.pageSize = max(1, newValue) } }
    }

    /// Forgets the delta state behind every link issued so far: using one answers `410 SyncStateNotFound`.
    public func expireDeltaTokens() {
        state.withLock { $0.delta.generation += 1 }
    }

    /// Records a change for delta queries; returns whether notifications are to be sent for it.
    func recordDeltaChange(_ message: SimulatedMessage, change: ChangeType) -> Bool {
        state.withLock { state in
            state.delta.changes.append(.init(messageID: message.id, userID: message.userID, folder: message.folder, deleted: change == .deleted))
            return !state.delta.dropsNotifications
        }
    }

    // MARK: Routing

    /// The message collection a delta request is on, when `resource` ends in `.../messages/delta`.
    static func deltaCollection(_ resource: ResourcePath) -> (target: ResourcePath.MailboxTarget, folder: String?)? {
        guard resource.segments.last == "delta", resource.segments.count >= 3 else { return nil }
        return ResourcePath(resource.segments.dropLast().joined(separator: "/")).messageCollection
    }

    // MARK: GET .../messages/delta

    func messageDelta(_ resource: ResourcePath, request: IncomingRequest, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard let collection = Self.deltaCollection(resource) else {
            return exchange.error(400, code: "BadRequest", message: "Resource not found for the segment 'delta'.")
        }
        let user: SimulatedUser
        switch mailboxOwner(collection.target, caller: caller, exchange: exchange) {
        case .success(let found): user = found
        case .failure(let refusal): return refusal.response
        }
        var pageSize = state.withLock { $0.delta.pageSize }
        if let prefer = request.header("Prefer"), let range = prefer.range(of: "odata.maxpagesize=") {
            if let asked = Int(prefer[range.upperBound...].prefix { $0.isNumber }), asked > 0 { pageSize = asked }
        }
        let gone = exchange.error(
            410, code: "SyncStateNotFound",
            message: "The sync state generation is not valid or has expired. Start again without a token to get a new baseline.")

        return state.withLock { state -> OutgoingResponse in
            let generation = state.delta.generation
            // (from, to]: the change numbers this query covers; offset: items already paged past.
            var from = 0
            var to = state.delta.changes.count
            var offset = 0
            if let token = request.queryValue("$deltatoken") {
                guard let parts = Self.tokenParts(token, count: 2), parts[0] == generation, parts[1] <= to else { return gone }
                from = parts[1]
            } else if let token = request.queryValue("$skiptoken") {
                guard let parts = Self.tokenParts(token, count: 4), parts[0] == generation, parts[1] <= parts[2], parts[2] <= to else { return gone }
                (from, to, offset) = (parts[1], parts[2], parts[3])
            }
            // Each message's last change in (from, to], in the order of those last changes.
            var last: [String: Int] = [:]
            for number in stride(from: from + 1, through: to, by: 1) {
                let change = state.delta.changes[number - 1]
                guard change.userID == user.id else { continue }
                if let folder = collection.folder,
                    folder != change.folder, folder != folderID(userID: change.userID, folder: change.folder).lowercased()
                {
                    continue
                }
                last[change.messageID] = number
            }
            var ordered = last.sorted { $0.value < $1.value }
            if from == 0 { ordered.removeAll { state.delta.changes[$0.value - 1].deleted } }  // a baseline lists what exists
            let page = ordered.dropFirst(offset).prefix(pageSize)
            var values: [JSONValue] = []
            for (id, number) in page {
                if !state.delta.changes[number - 1].deleted, let message = state.messages[id] {
                    guard case .object(let members) = messageJSON(message, selecting: nil) else { continue }
                    values.append(.object([JSONValue.Member("@odata.type", "#microsoft.graph.message")] + members))
                } else {
                    values.append(.object([
                        "@odata.type": "#microsoft.graph.message", "id": .string(id), "@removed": .object(["reason": "deleted"]),
                    ]))
                }
            }
            let link = authorityURL + request.path
            var body: [JSONValue.Member] = [
                .init("@odata.context", .string("\(graphBaseURL)/$metadata#Collection(message)")),
            ]
            let next = offset + page.count
            if next < ordered.count {
                body.append(.init("@odata.nextLink", .string("\(link)?$skiptoken=\(Self.token([generation, from, to, next]))")))
            } else {
                body.append(.init("@odata.deltaLink", .string("\(link)?$deltatoken=\(Self.token([generation, to]))")))
            }
            body.append(.init("value", .array(values)))
            return exchange.json(200, .object(body))
        }
    }

    /// An opaque-looking token carrying numbers.
    static func token(_ numbers: [Int]) -> String {
        "LztZ" + numbers.map { String($0, radix: 36) }.joined(separator: "_")
    }

    static func tokenParts(_ token: String, count: Int) -> [Int]? {
        guard token.hasPrefix("LztZ") else { return nil }
        let parts = token.dropFirst(4).split(separator: "_", omittingEmptySubsequences: false).compactMap { Int($0, radix: 36) }
        return parts.count == count && parts.allSatisfy { $0 >= 0 } ? parts : nil
    }
}
