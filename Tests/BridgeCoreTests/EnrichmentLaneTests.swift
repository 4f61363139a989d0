import BridgeStore
import Foundation
import Synchronization
import Testing

@testable import BridgeCore
import TestSupport

@Suite("Enrichment lanes", .timeLimit(.minutes(2)))
struct EnrichmentLaneTests {
    @Test("a subscription whose enrichment hangs holds up neither another subscription's events nor a lifecycle event; its own keep their order")
    func slowLaneHoldsNobodyUp() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let recorder = Recorder()
        let slow = (0..<3).map { makeEvent(subscription: "slow", resource: "Users/1/Messages/\($0)") }
        let fast = (0..<3).map { makeEvent(subscription: "fast", resource: "Users/2/Messages/\($0)") }
        let lifecycle = makeEvent(subscription: "slow", changeType: nil, lifecycleEvent: "missed")
        let gate = Gate()
        let enricher = GatedEnricher(gate: gate, holding: slow[0].id)
        let engine = DeliveryEngine(
            store: store, router: EngineTests.everythingTo(["sink"]), sinks: [EngineTests.sink("sink", recorder: recorder, concurrency: 1)],
            enricher: enricher, logger: quietLogger)
        try await EngineTests.withEngine(engine) {
            _ = try await store.journal((slow + fast + [lifecycle]).map { JournalEntry(event: $0, deduplicationKey: nil) })
            engine.journalDoorbell.ring()
            // The gate stays shut until the test opens it: these four flowed past the hanging
            // enrichment, not after it.
            await recorder.waitForDeliveries(4)
            #expect(Set(recorder.delivered) == Set((fast + [lifecycle]).map(\.id)), "the other subscription and the lifecycle event flowed while the enrichment hung")
            #expect(recorder.delivered.filter { id in fast.contains { $0.id == id } } == fast.map(\.id), "a subscription's events keep their order")
            // The later events of the slow subscription are enriched but wait behind the first,
            // which is still journaled and unrouted (a crash now loses none of them).
            await enricher.waitUntilEnriched(slow[1].id, slow[2].id)
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == slow.map(\.id))

            gate.open()
            await recorder.waitForDeliveries(7)
            #expect(Array(recorder.delivered.suffix(3)) == slow.map(\.id), "the slow subscription's events, in their order, after the wait")
            #expect(try await store.unroutedCount() == 0)
        }
    }

    @Test(
        "stopping while an enrichment hangs: the waiting events stay journaled and are routed once at the next start; nothing routed is routed again")
    func stopWhileEnrichmentHangs() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let slow = (0..<2).map { makeEvent(subscription: "slow", resource: "Users/1/Messages/\($0)") }
        let fast = (0..<2).map { makeEvent(subscription: "fast", resource: "Users/2/Messages/\($0)") }
        do {
            let store = try SQLiteStateStore(path: path, logger: quietLogger)
            let recorder = Recorder()
            let engine = DeliveryEngine(
                store: store, router: EngineTests.everythingTo(["sink"]), sinks: [EngineTests.sink("sink", recorder: recorder, concurrency: 1)],
                enricher: GatedEnricher(gate: Gate(), holding: slow[0].id), logger: quietLogger)
            // The gate never opens: the stop returns (within the suite's time limit) only because
            // it does not wait for the hanging enrichment.
            try await EngineTests.withEngine(engine) {
                // Journaled in the order slow, fast, slow, fast: the mark cannot pass the first.
                _ = try await store.journal([slow[0], fast[0], slow[1], fast[1]].map { JournalEntry(event: $0, deduplicationKey: nil) })
                engine.journalDoorbell.ring()
                await recorder.waitForDeliveries(2)
            }
            #expect(recorder.delivered == fast.map(\.id))
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == slow.map(\.id))
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        let recorder = Recorder()
        let engine = DeliveryEngine(
            store: store, router: EngineTests.everythingTo(["sink"]), sinks: [EngineTests.sink("sink", recorder: recorder, concurrency: 1)],
            enricher: GatedEnricher(gate: Gate(), holding: nil), logger: quietLogger)
        try await EngineTests.withEngine(engine) {
            await recorder.waitForDeliveries(2)
            let drained = try await eventually { try await store.unroutedCount() == 0 }
            #expect(drained)
        }
        #expect(recorder.delivered == slow.map(\.id), "only the events that were waiting, in their order")
    }

    @Test("lane table: a full lane leaves its later events in the store and reads them again once it drains; other lanes go on")
    func laneWindow() {
        var table = LaneTable(window: 8, laneWindow: 2)
        func pending(_ sequence: Int64, _ subscription: String) -> PendingEvent {
            PendingEvent(sequence: sequence, event: makeEvent(subscription: subscription), attachment: nil)
        }
        let admitted1 = table.admit(pending(1, "a"), lane: "a")
        #expect(admitted1)
        let admitted2 = table.admit(pending(2, "a"), lane: "a")
        #expect(admitted2)
        let admitted3 = table.admit(pending(3, "a"), lane: "a")
        #expect(!admitted3, "the lane is full")
        let admitted4 = table.admit(pending(4, "b"), lane: "b")
        #expect(admitted4, "another lane goes on")
        let admitted5 = table.admit(pending(5, "a"), lane: "a")
        #expect(!admitted5, "a lane that left an event behind takes none after it")
        #expect(table.readThrough == 5)
        #expect(table.held == 3)

        // b's event is done first: it goes alone; a's second is done but waits for the first.
        var ready = table.takeReady([4: makeEvent(subscription: "b"), 2: makeEvent(subscription: "a")])
        #expect(ready.map(\.pending.sequence) == [4])
        table.committed(ready)
        #expect(table.readThrough == 5, "a has not drained")
        ready = table.takeReady([1: makeEvent(subscription: "a")])
        #expect(ready.map(\.pending.sequence) == [1, 2])
        table.committed(ready)
        #expect(table.readThrough == 2, "reading starts again at a's first event left behind")
        let admitted6 = table.admit(pending(3, "a"), lane: "a")
        #expect(admitted6)
        let admitted7 = table.admit(pending(5, "a"), lane: "a")
        #expect(admitted7)
        #expect(table.held == 2)

        // A commit that fails puts the events back, to be taken again.
        ready = table.takeReady([3: nil])
        #expect(ready.map(\.pending.sequence) == [3])
        table.putBack(ready)
        let again = table.takeReady([:])
        #expect(again.map(\.pending.sequence) == [3])
    }
}

/// How long `body` took.
/// Opens once; waiters before and after pass. A cancelled waiter leaves at once.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [Int: CheckedContinuation<Void, Never>], next: Int)>((false, [:], 0))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        let id = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.open || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// Holds one event (by id) until its gate opens; marks every event it completes with `data`.
struct GatedEnricher: EventEnricher {
    let gate: Gate
    let holding: String?
    private let enriched = Recorder()

    init(gate: Gate, holding: String?) {
        self.gate = gate
        self.holding = holding
    }

    func enrich(_ pending: PendingEvent) async -> BridgeEvent? {
        if pending.event.id == holding { await gate.wait() }
        var event = pending.event
        if !event.isLifecycle { event.data = .object(["enriched": .bool(true)]) }
        enriched.succeeded(event)
        return event
    }

    /// Returns once these events have been enriched.
    func waitUntilEnriched(_ ids: String...) async {
        while !Set(ids).isSubset(of: Set(enriched.delivered)) {
            await enriched.waitForDeliveries(enriched.delivered.count + 1)
        }
    }
}
