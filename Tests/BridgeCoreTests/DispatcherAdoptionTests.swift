import BridgeStore
import Foundation
import TestSupport
import Testing

@testable import BridgeCore

/// The dispatcher routes only its replica's events, and adopts a lapsed replica's events once its
/// lease is over, by the clock it is given (moved by the test: no waiting).
@Suite("Dispatcher: adopting a lapsed replica's events", .timeLimit(.minutes(1)))
struct DispatcherAdoptionTests {
    @Test("another replica's events wait while its lease holds and are routed at the first look after it lapsed")
    func adoptsAfterLease() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = ManualTestClock(start: start)
        let other = ReplicaID("other")
        try await store.registerReplica(other, now: start, lease: .seconds(30))
        let events = (0..<3).map { makeEvent(at: start.addingTimeInterval(Double($0))) }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil, replica: other) })

        let sinkDoorbell = Doorbell()
        let dispatcher = Dispatcher(
            store: store, router: Router(routes: [Route(matcher: nil, sinks: ["s"])]), enricher: NoEnrichment(), doorbell: Doorbell(),
            sinkDoorbells: ["s": sinkDoorbell], backlog: Backlog(limit: nil), logger: quietLogger, replica: ReplicaID("this"),
            adoptionInterval: .seconds(10), clock: clock, wallClock: { clock.date })
        let running = Task { await dispatcher.run() }

        // Looked at start and at +10 s and +20 s: the other replica is alive, nothing routed.
        for look in [10, 20] {
            _ = await clock.sleeper { $0.offset == .seconds(look) }
            #expect(try await store.unroutedCount() == 3)
            clock.advance(to: start.addingTimeInterval(Double(look)))
        }
        _ = await clock.sleeper { $0.offset == .seconds(30) }
        #expect(try await store.unroutedCount() == 3)
        // Its lease ends at +30 s; the look after that adopts and routes all three, in order.
        clock.advance(to: start.addingTimeInterval(30.5))
        await sinkDoorbell.wait(timeout: nil)
        #expect(try await store.unroutedCount() == 0)
        let due = try await store.dueDeliveries(sink: "s", now: clock.date, limit: 10, excluding: [])
        #expect(due.map(\.event.id) == events.map(\.id))

        dispatcher.stop()
        await running.value
    }
}
