public import BridgeCore
import BridgeStore
import Foundation
import Logging

/// The store side of `graph-bridge dead-letters`.
public struct DeadLetterTool {
    let store: SQLiteStateStore

    public init(configuration: BridgeConfiguration) throws {
        store = try SQLiteStateStore(path: configuration.state.path, logger: Logger(label: "graph-bridge.dead-letters"))
    }

    public func list(limit: Int) async throws -> [String] {
        try await store.deadLetters(limit: limit).map { letter in
            "\(letter.id)  sink=\(letter.sink)  event=\(letter.eventID)  subscription=\(letter.subscription)  attempts=\(letter.attempts)  died=\(Timestamp.format(letter.deadAt))  error=\(letter.lastError)"
        }
    }

    public func retry(ids: [Int64]?) async throws -> Int { try await store.retryDeadLetters(ids: ids) }

    public func purge() async throws -> Int { try await store.purgeDeadLetters() }
}
