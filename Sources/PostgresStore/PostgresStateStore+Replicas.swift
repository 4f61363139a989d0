public import BridgeCore
public import Foundation
import PostgresNIO
import Synchronization

extension PostgresStateStore {
    /// The lifecycle notifications journaled (by any replica) at or after `date`, oldest first: the
    /// leader reads them to act on the ones that reached another replica.
    public func lifecycleEvents(receivedSince date: Date, limit: Int = 1000) async throws -> [BridgeEvent] {
        // The text test keeps the scan to lifecycle events; the decoded event decides.
        let bodies = try await rows(
            """
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

extension PostgresStateStore {
    /// How often one process stamps a subscription's `last_notification_at`: it only tells a
    /// start whether the bridge was down longer than Graph retries (4 h).
    static let notificationStampInterval: TimeInterval = 10

    /// Stamps `last_notification_at` of `subscriptions`, at most every ``notificationStampInterval``
    /// per subscription, after the journal's commit and outside its transaction: inside, every
    /// journal write of a subscription held its row until the commit, so concurrent requests (and
    /// replicas) committed one after the other. A failure is logged, not thrown: the events are journaled.
    func stampLastNotification(_ subscriptions: Set<String>, at date: Date) async {
        let due = notificationStamps.withLock { stamps -> [String] in
            let names = subscriptions.filter { stamps[$0].map { date.timeIntervalSince($0) >= Self.notificationStampInterval } ?? true }
            for name in names { stamps[name] = date }
            return names.sorted()
        }
        guard !due.isEmpty else { return }
        do {
            _ = try await client.query(
                "UPDATE subscriptions SET last_notification_at = GREATEST(COALESCE(last_notification_at, 0), \(date.timeIntervalSince1970)) WHERE name = ANY(\(due))",
                logger: logger
            ).collect()
        } catch {
            notificationStamps.withLock { stamps in for name in due { stamps[name] = nil } }
            logger.warning("could not record when a subscription last had a notification", metadata: ["error": "\(error)"])
        }
    }
}
