public import BridgeCore
public import BridgeSettings
import BridgeStore
import Foundation
public import Logging
import PostgresStore

/// Every store the bridge can run on, as the runner and the commands use it.
public typealias BridgeStateStore = any StateStore & SubscriptionStore & StoreInspection

/// The state store `state:` names: the PostgreSQL database of `state.url`, or else the SQLite
/// file of `state.path`.
public struct OpenedStore: Sendable {
    public let store: BridgeStateStore
    /// Where it is, for messages (a URL never shows its password).
    public let place: String
    private let close: @Sendable () async -> Void

    /// Opens the store; for SQLite, nil when `onlyIfPresent` and the file does not exist (the
    /// read-only commands never create one).
    public static func open(_ state: StateSettings, onlyIfPresent: Bool = false, logger: Logger) async throws -> OpenedStore? {
        if let location = state.url {
            let store = try await PostgresStateStore(location: location, logger: logger)
            return OpenedStore(store: store, place: "\(location)", close: { await store.shutdown() })
        }
        if onlyIfPresent, !FileManager.default.fileExists(atPath: state.path) { return nil }
        return OpenedStore(store: try SQLiteStateStore(path: state.path, logger: logger), place: state.path, close: {})
    }

    /// Closes the store's connections (PostgreSQL); the store cannot be used afterwards.
    public func shutdown() async { await close() }
}
