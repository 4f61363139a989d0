import BridgeCore
import BridgeSettings
import BridgeStore
import Foundation
import Logging
import PostgresStore
import Synchronization
import TestSupport
import Testing

@testable import BridgeApp

/// The waits of a replica's directory sync and of the leader's lifecycle relay, on a clock the
/// test moves: what they read, and when, without waiting a real second.
@Suite("replica timing")
struct ReplicaTimingTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func record(_ name: String, id: String?, clientState: String = "secret") -> SubscriptionRecord {
        DirectorySyncTests.record(name, id: id, clientState: clientState)
    }

    @Test("the directory sync reads the records at once, then once per interval on its clock, dropping what the records no longer have")
    func periodicRead() async throws {
        let folder = TemporaryDirectory(prefix: "directory-sync-clock")
        let store = try SQLiteStateStore(path: folder.file("state.sqlite"), logger: Self.quiet)
        let directory = SubscriptionDirectory([])
        let clock = ManualTestClock(start: Self.start)
        let sync = DirectorySync(store: store, directory: directory, managedNames: ["inbox"], interval: .seconds(1), clock: clock, logger: Self.quiet)
        try await store.saveSubscription(Self.record("inbox", id: "A"))
        let task = Task { try await sync.run() }
        defer { task.cancel() }

        // The first read happens before the first wait, which lasts one interval.
        await clock.sleepers(1, until: .seconds(1))
        #expect(directory.entry(forSubscriptionID: "A")?.name == "inbox")

        // The leader recreates the subscription: seen at the next read, not before.
        try await store.saveSubscription(Self.record("inbox", id: "B"))
        clock.advance(by: .milliseconds(999))
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(1)], "still asleep")
        #expect(directory.entry(forSubscriptionID: "B") == nil)
        clock.advance(by: .milliseconds(1))
        await clock.sleepers(1, until: .seconds(2))
        #expect(directory.entry(forSubscriptionID: "B")?.name == "inbox")
        #expect(directory.entry(forSubscriptionID: "A") == nil, "the old id left with its record")

        task.cancel()
        try await task.value
    }

    @Test("on-demand reads: at most one per 250 ms of the clock; they admit without dropping, and what they admitted is dropped by a later periodic read")
    func onDemandReads() async throws {
        let folder = TemporaryDirectory(prefix: "directory-sync-on-demand")
        let store = try SQLiteStateStore(path: folder.file("state.sqlite"), logger: Self.quiet)
        let directory = SubscriptionDirectory([])
        let clock = ManualTestClock(start: Self.start)
        let sync = DirectorySync(store: store, directory: directory, managedNames: ["inbox"], clock: clock, logger: Self.quiet)

        try await store.saveSubscription(Self.record("inbox", id: "A"))
        await sync.refreshNow()
        #expect(directory.entry(forSubscriptionID: "A") != nil)

        try await store.saveSubscription(Self.record("inbox", id: "B"))
        clock.advance(by: .milliseconds(249))
        await sync.refreshNow()
        #expect(directory.entry(forSubscriptionID: "B") == nil, "within 250 ms of the last on-demand read: no read")
        clock.advance(by: .milliseconds(1))
        await sync.refreshNow()
        #expect(directory.entry(forSubscriptionID: "B") != nil)
        #expect(directory.entry(forSubscriptionID: "A") != nil, "an on-demand read drops nothing")
        #expect(sync.admitted == ["a", "b"])

        // The periodic read drops both ids the on-demand reads admitted once their record moved on.
        try await store.saveSubscription(Self.record("inbox", id: "C"))
        try await sync.syncOnce()
        #expect(directory.entry(forSubscriptionID: "A") == nil)
        #expect(directory.entry(forSubscriptionID: "B") == nil)
        #expect(directory.entry(forSubscriptionID: "C") != nil)
        #expect(sync.admitted == ["c"])
    }

    @Test("a reload hands the process's directory sync the new managed names: ids it admitted before are dropped when no record of a managed name has them")
    func reloadKeepsWhatWasAdmitted() async throws {
        let folder = TemporaryDirectory(prefix: "directory-sync-reload")
        let store = try SQLiteStateStore(path: folder.file("state.sqlite"), logger: Self.quiet)
        let directory = SubscriptionDirectory([])
        let sync = DirectorySync(store: store, directory: directory, managedNames: ["inbox", "team"], logger: Self.quiet)
        try await store.saveSubscription(Self.record("inbox", id: "A"))
        try await store.saveSubscription(Self.record("team", id: "T"))
        try await sync.syncOnce()
        #expect(directory.entry(forSubscriptionID: "A") != nil && directory.entry(forSubscriptionID: "T") != nil)

        // The reload: `team` left the file; meanwhile the leader recreated `inbox` under a new id.
        sync.manage(["inbox"])
        try await store.saveSubscription(Self.record("inbox", id: "A2"))
        try await sync.syncOnce()
        #expect(directory.entry(forSubscriptionID: "A") == nil, "admitted under the previous configuration, gone from the records")
        #expect(directory.entry(forSubscriptionID: "T") == nil, "no longer declared: the leader deletes it at Graph")
        #expect(directory.entry(forSubscriptionID: "A2")?.name == "inbox")
        #expect(sync.admitted == ["a2"])
    }

    /// Collects what the relay hands over.
    final class Recorder: LifecycleObserver {
        let batches = Mutex<[[String]]>([])
        func lifecycleEventsJournaled(_ events: [BridgeEvent]) async {
            let ids = events.map(\.id)
            batches.withLock { $0.append(ids) }
        }
        var all: [[String]] { batches.withLock { $0 } }
    }

    static func lifecycle(_ name: String, at date: Date) -> BridgeEvent {
        BridgeEvent(
            id: EventID.make(at: date), receivedAt: date, subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/a/messages"),
            lifecycleEvent: name, resource: "subscriptions/sub-1", tenantId: "tenant")
    }

    @Test(
        "the lifecycle relay reads the journal once per interval on its clock, within its lookback of the injected wall clock; a new leader skips what its predecessor handled",
        .machine(.processes))
    func lifecycleRelay() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let store = try await PostgresStateStore(location: try PostgresLocation.parse(server.url(database: try await server.createDatabase())), logger: Self.quiet)
        do {
            try await relayOnClock(store)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }

    func relayOnClock(_ store: PostgresStateStore) async throws {
        let clock = ManualTestClock(start: Self.start)
        let tooOld = Self.lifecycle("missed", at: Self.start.addingTimeInterval(-400))
        let first = Self.lifecycle("reauthorizationRequired", at: Self.start.addingTimeInterval(-20))
        #expect(try await store.journal([JournalEntry(event: tooOld, deduplicationKey: nil), JournalEntry(event: first, deduplicationKey: nil)]).count == 2)

        let recorder = Recorder()
        let relay = LifecycleRelay(
            store: store, observer: recorder, interval: .seconds(1), lookback: 300, clock: clock, wallClock: { clock.date }, logger: Self.quiet)
        let task = Task { await relay.run() }
        await clock.sleepers(1, until: .seconds(1))
        #expect(recorder.all == [[first.id]], "older than the lookback (300 s before the wall clock): not handed over")

        // A lifecycle notification another replica journals: handed over at the next read, once.
        let second = Self.lifecycle("subscriptionRemoved", at: Self.start.addingTimeInterval(0.5))
        _ = try await store.journal([JournalEntry(event: second, deduplicationKey: nil)])
        clock.advance(by: .seconds(1))
        await clock.sleepers(1, until: .seconds(2))
        #expect(recorder.all == [[first.id], [second.id]])
        clock.advance(by: .seconds(1))
        await clock.sleepers(1, until: .seconds(3))
        #expect(recorder.all.count == 2, "nothing new: nothing handed over")
        task.cancel()
        await task.value
        let handled = try await store.setting(LifecycleRelay.handledKey).flatMap(Double.init)
        #expect(handled.map { abs($0 - second.receivedAt.timeIntervalSince1970) < 0.001 } == true)

        // The next leader looks back from the mark less 10 s: the second again (harmless), not the first.
        let next = Recorder()
        let nextClock = ManualTestClock(start: Self.start.addingTimeInterval(5))
        let successor = LifecycleRelay(
            store: store, observer: next, interval: .seconds(1), lookback: 300, clock: nextClock, wallClock: { nextClock.date }, logger: Self.quiet)
        let nextTask = Task { await successor.run() }
        await nextClock.sleepers(1, until: .seconds(1))
        #expect(next.all == [[second.id]])
        nextTask.cancel()
        await nextTask.value
    }
}
