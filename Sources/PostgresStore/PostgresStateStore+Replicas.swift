public import BridgeCore
public import Foundation
import PostgresNIO

extension PostgresStateStore {
    /// The lifecycle notifications journaled (by any replica) at or after `date`, oldest first: the
    /// leader reads them to act on the ones that reached another replica.
    public func lifecycleEvents(receivedSince date: Date, limit: Int = 1000) async throws -> [BridgeEvent] {
        // The text test keeps the scan to lifecycle events; the decoded event decides.
        let bodies = try await rows("""
            SELECT body FROM events WHERE received_at >= \(date.timeIntervalSince1970) AND body LIKE '%"lifecycleEvent":%'
            ORDER BY seq LIMIT \(max(0, limit))
            """, as: String.self)
        return try bodies.compactMap {
            do {
                let event = try BridgeEvent(encoded: Array($0.utf8))
                return event.isLifecycle ? event : nil
            } catch {
                throw PostgresStoreError("a stored event is unreadable: \(error)")
            }
        }
    }
}
