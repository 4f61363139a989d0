import BridgeConfig
public import BridgeCore
public import BridgeSettings
import BridgeStore
public import Foundation
import Logging

/// The store side of `graph-bridge dead-letters`. It needs only the `state:` settings, and never
/// creates a state file: with none there yet, there is nothing to list, retry or purge.
public struct DeadLetterTool {
    let store: BridgeStateStore?

    private init(store: BridgeStateStore?) { self.store = store }

    /// The tool on the store `state` names (SQLite or PostgreSQL). The PostgreSQL store's
    /// connections stay open until the process ends: each command makes one tool.
    public static func open(state: StateSettings) async throws -> DeadLetterTool {
        DeadLetterTool(store: try await OpenedStore.open(state, onlyIfPresent: true, logger: Logger(label: "graph-bridge.dead-letters"))?.store)
    }

    /// The first `limit` dead letters of `selection`, oldest first, and how many match in all.
    public func list(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage {
        guard let store else { return DeadLetterPage(letters: [], total: 0) }
        return try await store.deadLetters(selection, limit: limit)
    }

    /// Queues the selection again; throws ``UnknownDeadLetters`` (queueing nothing) when an id is not a dead letter.
    public func retry(_ selection: DeadLetterSelection) async throws -> Int {
        guard let store else { return try Self.nothing(selection) }
        return try await store.retryDeadLetters(selection)
    }

    /// Deletes the selection; throws ``UnknownDeadLetters`` (deleting nothing) when an id is not a dead letter.
    public func purge(_ selection: DeadLetterSelection) async throws -> Int {
        guard let store else { return try Self.nothing(selection) }
        return try await store.purgeDeadLetters(selection)
    }

    private static func nothing(_ selection: DeadLetterSelection) throws -> Int {
        if let ids = selection.ids, !ids.isEmpty { throw UnknownDeadLetters(ids: ids) }
        return 0
    }

    /// One line of `dead-letters list`.
    public static func text(_ letter: DeadLetter) -> String {
        "\(letter.id)  sink=\(letter.sink)  event=\(letter.eventID)  subscription=\(letter.subscription)  attempts=\(letter.attempts)  died=\(Timestamp.format(letter.deadAt))  error=\(letter.lastError)"
    }

    /// One line of `dead-letters list --json`: a JSON object.
    public static func json(_ letter: DeadLetter) -> String {
        let object: JSONObject = [
            "id": .number(String(letter.id)),
            "sink": .string(letter.sink),
            "event": .string(letter.eventID),
            "subscription": .string(letter.subscription),
            "attempts": .number(String(letter.attempts)),
            "createdAt": .string(Timestamp.format(letter.createdAt)),
            "deadAt": .string(Timestamp.format(letter.deadAt)),
            "error": .string(letter.lastError),
        ]
        return JSONValue.object(object).serializedString
    }

    /// A `--since`/`--before` value: a duration back from `now` (`30m`, `2h`, `7d`) or an ISO 8601
    /// time (`2026-12-06T10:00:00Z`) or day (`2026-12-06`, midnight UTC); nil when it is neither.
    public static func time(_ text: String, now: Date = Date()) -> Date? {
        if let duration = ConfigDuration.parse(text) {
            let (seconds, attoseconds) = duration.components
            return now.addingTimeInterval(-(Double(seconds) + Double(attoseconds) / 1e18))
        }
        if let date = Timestamp.parse(text) { return date }
        return try? Date(text + "T00:00:00Z", strategy: Date.ISO8601FormatStyle())
    }
}
