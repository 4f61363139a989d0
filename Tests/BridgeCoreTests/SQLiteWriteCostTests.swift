import BridgeCore
import Foundation
import TestSupport
import Testing

@testable import BridgeStore

/// What each event costs the SQLite file (issue 16): the WAL meter that measures it, and the
/// writes taken out of the per-event path.
@Suite("SQLite writes per event")
struct SQLiteWriteCostTests {
    static let frame = Int64(4096 + 24)

    static func size(_ file: String) -> Int64 { Int64((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) }

    @Test("the WAL meter counts every frame the commits append, also after the WAL started over")
    func walMeter() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        // No checkpoint timer: the WAL only starts over when the test checkpoints.
        let store = try SQLiteStateStore(path: path, walSizeLimit: SQLiteStateStore.walSizeLimit, checkpointInterval: nil, logger: quietLogger)
        _ = try await store.journal((0..<20).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
        // A WAL that never started over holds a 32-byte header and every frame the commits wrote
        // (the migrations' included: the meter is installed before them).
        #expect(store.walBytesWritten > 0)
        #expect(store.walBytesWritten % Self.frame == 0)
        #expect(store.walBytesWritten == Self.size(path + "-wal") - 32)

        // Copied back; the next commit starts the WAL from its first frame. The meter counts that
        // commit's frames (the WAL's only ones now), not the difference from the old frame count.
        let copied = try await store.checkpoint()
        #expect(copied.copied == copied.walFrames)
        let before = store.walBytesWritten
        let commitsBefore = store.commits
        _ = try await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: "k")])
        let after = try await store.checkpoint()
        #expect(after.walFrames > 0 && after.walFrames < copied.walFrames, "the WAL did not start over: \(after.walFrames) frames")
        #expect(store.walBytesWritten - before == Int64(after.walFrames) * Self.frame)
        #expect(store.commits - commitsBefore == 1, "one journal call, one commit")
    }

    @Test("a claim writes nothing to the file, and still hands a delivery to one replica at a time until its outcome")
    func claimsWriteNothing() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let now = Date()
        let replica = ReplicaID("replica-a")
        do {
            let store = try SQLiteStateStore(path: path, walSizeLimit: SQLiteStateStore.walSizeLimit, checkpointInterval: nil, logger: quietLogger)
            _ = try await store.journal((0..<3).map { _ in JournalEntry(event: makeEvent(at: now), deduplicationKey: nil) })
            let pending = try await store.unroutedEvents(limit: 10)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["s"]) }, now: now)
            try await store.registerReplica(replica, now: now, lease: .seconds(30))

            let before = store.walBytesWritten
            let first = try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 2)
            #expect(first.count == 2)
            #expect(store.walBytesWritten == before, "a claim wrote \(store.walBytesWritten - before) bytes to the WAL")
            // Held until their outcome: the next claim gets the third only, and the next due date skips the held ones.
            let second = try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 10)
            #expect(second.count == 1)
            #expect(Set(first.map(\.id)).isDisjoint(with: second.map(\.id)))
            #expect(try await store.nextDueDate(sink: "s", replica: replica, now: now) == nil)
            // A retry ends the claim: claimable again at its date.
            let later = now.addingTimeInterval(10)
            try await store.recordRetry(deliveryID: first[0].id, attempts: 1, nextAttemptAt: later, error: "503")
            #expect(try await store.nextDueDate(sink: "s", replica: replica, now: now).map { abs($0.timeIntervalSince(later)) < 0.001 } == true)
            #expect(try await store.claimDeliveries(sink: "s", replica: replica, now: later, limit: 10).map(\.id) == [first[0].id])
            try await store.recordSuccess(deliveryID: first[1].id)
        }
        // The process is gone and its claims with it: the next start claims what has no outcome.
        let store = try SQLiteStateStore(path: path, walSizeLimit: SQLiteStateStore.walSizeLimit, checkpointInterval: nil, logger: quietLogger)
        let next = ReplicaID("replica-b")
        try await store.registerReplica(next, now: now.addingTimeInterval(61), lease: .seconds(30))
        #expect(try await store.claimDeliveries(sink: "s", replica: next, now: now.addingTimeInterval(61), limit: 10).count == 2)
    }

    @Test("the journal stamps a subscription's last notification at most once a second")
    func notificationStamp() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        try await store.saveSubscription(
            SubscriptionRecord(
                name: "inbox", graphID: "g", resource: "me/messages", changeTypes: "created", clientState: "c", notificationURL: "https://x/n",
                expiration: nil, renewedAt: nil, managed: false, lastNotificationAt: nil))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        func stamp() async throws -> Date? { try await store.subscriptionRecords().first?.lastNotificationAt }
        _ = try await store.journal([JournalEntry(event: makeEvent(at: t0), deduplicationKey: nil)])
        #expect(try await stamp() == t0)
        _ = try await store.journal([JournalEntry(event: makeEvent(at: t0.addingTimeInterval(0.5)), deduplicationKey: nil)])
        #expect(try await stamp() == t0, "stamped again within a second")
        _ = try await store.journal([JournalEntry(event: makeEvent(at: t0.addingTimeInterval(1.5)), deduplicationKey: nil)])
        #expect(try await stamp() == t0.addingTimeInterval(1.5))
    }
}
