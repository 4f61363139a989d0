import BridgeStore
import Foundation
import Synchronization
import Testing
import TestSupport

@testable import BridgeCore

/// A sink with a batch limit gets what is queued in one call (issue 16): the state machine's
/// batches, and the worker against a real store with a sink that takes batches.
@Suite("sink worker: batches for sinks that take them", .timeLimit(.minutes(1)))
struct BatchDeliveryTests {
    typealias Machine = SinkWorkerStateMachine
    let now = SinkWorkerStateMachineTests.now

    func delivery(_ id: Int64) -> Delivery { SinkWorkerStateMachineTests.delivery(id) }
    func success(_ id: Int64, took: Duration = .milliseconds(3)) -> Machine.Success { Machine.Success(delivery: delivery(id), took: took) }

    func machine(concurrency: Int = 1, claimBatch: Int = 8, batchLimit: Int) -> Machine {
        SinkWorkerStateMachineTests.machine(concurrency: concurrency, claimBatch: claimBatch, batchLimit: batchLimit)
    }

    @Test("what is claimed goes in batches of up to batchLimit, one call per slot; the rest waits for a slot")
    func batches() {
        var machine = machine(concurrency: 1, batchLimit: 4)
        #expect(machine.handle(.turn(stopping: false), now: now) == [.claim(limit: 8)])
        let started = machine.handle(.claimed((1...6).map(delivery)), now: now)
        #expect(started.first == .startBatch((1...4).map(delivery)))
        #expect(!started.contains(.findNextDue), "the only slot is taken by the batch")
        #expect(machine.calls == 1)
        #expect(machine.inFlight.count == 4)
        #expect(machine.buffered.map(\.id) == [5, 6])

        let done = machine.handle(.deliveredBatch((1...4).map { (id: $0, outcome: .success(took: .milliseconds(3))) }), now: now)
        #expect(done == [.recordSuccesses((1...4).map { success($0) }, failures: 0, after: .zero)], "one write for the whole batch")
        #expect(machine.calls == 0)
        #expect(machine.recording == [1, 2, 3, 4])
        #expect(machine.handle(.turn(stopping: false), now: now).first == .startBatch([delivery(5), delivery(6)]))
    }

    @Test("claims that come back full grow, doubling up to the ceiling; one that comes back short starts small again")
    func claimsGrow() {
        var machine = SinkWorkerStateMachineTests.machine(concurrency: 1, claimBatch: 4, claimCeiling: 16)
        var next: Int64 = 1
        /// Claims what the machine asks for (at most `available`), delivers it all, and returns the limit it asked for.
        func round(available: Int) -> Int? {
            guard case .claim(let limit) = machine.handle(.turn(stopping: false), now: now).first else { return nil }
            let claimed = (0..<min(limit, available)).map { _ in defer { next += 1 }; return delivery(next) }
            _ = machine.handle(.claimed(claimed), now: now)
            for delivery in claimed {
                _ = machine.handle(.delivered(delivery.id, .success(took: .zero)), now: now)
                _ = machine.handle(.recordedSuccesses([delivery.id]), now: now)
                _ = machine.handle(.turn(stopping: false), now: now)
            }
            return limit
        }
        #expect(round(available: 100) == 4)
        #expect(round(available: 100) == 8)
        #expect(round(available: 100) == 16)
        #expect(round(available: 100) == 16, "never past the ceiling")
        #expect(round(available: 3) == 16)
        #expect(round(available: 100) == 4, "a short claim: the queue is short, claims are small again")
    }

    @Test("a batch of one is an ordinary start, and batchLimit 1 never batches")
    func single() {
        var batching = machine(concurrency: 1, batchLimit: 4)
        _ = batching.handle(.turn(stopping: false), now: now)
        #expect(batching.handle(.claimed([delivery(1)]), now: now).first == .start(delivery(1)))

        var plain = machine(concurrency: 2, batchLimit: 1)
        _ = plain.handle(.turn(stopping: false), now: now)
        let actions = plain.handle(.claimed((1...3).map(delivery)), now: now)
        #expect(Array(actions.prefix(2)) == [.start(delivery(1)), .start(delivery(2))])
        #expect(plain.calls == 2)
    }

    @Test("with two slots, two batches run at once")
    func twoSlots() {
        var machine = machine(concurrency: 2, claimBatch: 8, batchLimit: 3)
        _ = machine.handle(.turn(stopping: false), now: now)
        let actions = machine.handle(.claimed((1...7).map(delivery)), now: now)
        #expect(Array(actions.prefix(2)) == [.startBatch((1...3).map(delivery)), .startBatch((4...6).map(delivery))])
        #expect(machine.calls == 2)
        #expect(machine.buffered.map(\.id) == [7])
    }

    @Test("a batch that failed part way: the head is written as one batch of successes, each failure on its own")
    func partial() {
        var machine = machine(concurrency: 1, batchLimit: 4)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed((1...3).map(delivery)), now: now)
        let actions = machine.handle(
            .deliveredBatch([
                (id: 1, outcome: .success(took: .milliseconds(3))), (id: 2, outcome: .failure(.retryable("disk full"))),
                (id: 3, outcome: .failure(.permanent("refused"))),
            ]), now: now)
        #expect(actions.count == 3)
        guard case .record(let retried, .retry(_, let error), failures: 0, after: .zero) = actions[0] else {
            Issue.record("expected a retry first: \(actions)")
            return
        }
        #expect(retried.id == 2)
        #expect(error == "disk full")
        #expect(actions[1] == .record(delivery(3), .deadLetter(error: "refused", at: now, expired: false), failures: 0, after: .zero))
        #expect(actions[2] == .recordSuccesses([success(1)], failures: 0, after: .zero))
        #expect(machine.recording == [1, 2, 3], "each still claimed until its outcome is written")
        #expect(machine.calls == 0)
    }

    @Test("an abandoned batch frees its slot; a stop finishes once nothing is in flight or being written")
    func abandoned() {
        var machine = machine(concurrency: 1, batchLimit: 4)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed((1...2).map(delivery)), now: now)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.startGraceTimer(.seconds(5)), .awaitStep])
        #expect(machine.handle(.abandonedBatch([1, 2]), now: now) == [])
        #expect(machine.calls == 0)
        #expect(machine.inFlight.isEmpty)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.finish])
    }

    @Test("a late answer for a batch no longer in flight changes nothing")
    func late() {
        var machine = machine(concurrency: 1, batchLimit: 4)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed((1...2).map(delivery)), now: now)
        _ = machine.handle(.abandonedBatch([1, 2]), now: now)
        #expect(machine.handle(.deliveredBatch([(id: 1, outcome: .success(took: .zero))]), now: now) == [])
        #expect(machine.calls == 0)
        #expect(machine.recording.isEmpty)
    }

    // MARK: - The worker, with a store and a sink that takes batches

    @Test("a drain goes to a batching sink in journal order, in batches no larger than its limit")
    func drainsInBatches() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let sink = BatchingSink(limit: 16)
        let events = (0..<100).map { _ in makeEvent() }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
        let engine = DeliveryEngine(store: store, router: EngineTests.everythingTo(["batched"]), sinks: [sink.entry(name: "batched")], logger: quietLogger)
        try await EngineTests.withEngine(engine) {
            engine.journalDoorbell.ring()
            await sink.waitForDeliveries(100)
        }
        #expect(sink.delivered == events.map(\.id), "in journal order, each once")
        #expect(sink.batchSizes.allSatisfy { $0 <= 16 })
        #expect(sink.batchSizes.contains { $0 > 1 }, "a queue of 100 went in batches: \(sink.batchSizes)")
        #expect(try await store.queueDepths().values.allSatisfy { $0.pending == 0 })
    }

    @Test("a batch that fails after its head: the head counts as delivered, the rest is tried again when its backoff is over, nothing twice")
    func partialFailure() async throws {
        let directory = TemporaryDirectory()
        let start = SinkWorkerClockTests.start
        let replica = ReplicaID("batch-test")
        let base = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let events = (0..<8).map { _ in makeEvent(at: start) }
        _ = try await base.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil, replica: replica) })
        let pending = try await base.unroutedEvents(for: replica, after: 0, limit: 10)
        try await base.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["batched"]) }, now: start)
        try await base.registerReplica(replica, now: start, lease: .seconds(30 * 86_400))
        let store = ObservedStore(base)
        let clock = ManualTestClock(start: start)
        // The first call delivers 3 and fails the rest; every later call delivers all.
        let sink = BatchingSink(limit: 8, failFirstCallAfter: 3)
        let worker = SinkWorker(
            name: "batched", sink: sink, store: store, retry: RetryPolicy(initialBackoff: .seconds(10), maxBackoff: .seconds(60), maxAge: .seconds(3600)),
            concurrency: 1, logger: quietLogger, shutdownGrace: .seconds(5), backlog: Backlog(limit: nil), replica: replica, clock: clock,
            wallClock: { clock.date })
        let running = Task { await worker.run() }

        var first: [String] = []
        for _ in 0..<8 { first.append(await store.nextOutcome()) }
        #expect(first.sorted() == Array(repeating: "retry", count: 5) + Array(repeating: "success", count: 3))
        #expect(sink.delivered == events.prefix(3).map(\.id), "the head, in order")
        #expect(sink.batchSizes == [8])

        // Every retry is due within 10 s (equal jitter of the 10 s backoff): time gets there.
        clock.advance(to: start.addingTimeInterval(10))
        for _ in 0..<5 { #expect(await store.nextOutcome() == "success") }
        #expect(sink.delivered == events.map(\.id), "each delivered once, in order")
        #expect(sink.batchSizes == [8, 5], "the failed tail went again as one batch")
        #expect(sink.attempts(of: events[5].id) == [1, 2], "the failed tail was tried again")
        #expect(sink.attempts(of: events[0].id) == [1], "the head was not")
        #expect(try await store.queueDepths().isEmpty)

        worker.stop()
        await running.value
    }
}

/// A sink that takes batches of up to `limit` and records each call; optionally its first call
/// delivers only `failFirstCallAfter` events and fails the rest (``SinkBatchError``).
final class BatchingSink: Sink {
    static let typeName = "batching"
    struct Configuration: Decodable, Sendable {}

    struct State {
        var delivered: [String] = []
        var batchSizes: [Int] = []
        var attempts: [String: [Int]] = [:]
        var failAfter: Int?
    }

    let limit: Int
    let state: Mutex<State>
    private let deliveries = Tally()

    init(limit: Int, failFirstCallAfter: Int? = nil) {
        self.limit = limit
        self.state = Mutex(State(failAfter: failFirstCallAfter))
    }

    convenience init(name: String, configuration: Configuration, context: SinkContext) throws { self.init(limit: 1) }

    var batchLimit: Int { limit }

    func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        try await deliver(batch: [SinkDelivery(event: event, attempt: attempt)])
    }

    func deliver(batch: [SinkDelivery]) async throws {
        let failAfter: Int? = state.withLock { state in
            state.batchSizes.append(batch.count)
            for item in batch { state.attempts[item.event.id, default: []].append(item.attempt.number) }
            let failAfter = state.failAfter
            state.failAfter = nil
            let delivered = batch.prefix(failAfter ?? batch.count)
            state.delivered += delivered.map(\.event.id)
            return failAfter
        }
        deliveries.add(failAfter.map { min($0, batch.count) } ?? batch.count)
        if let failAfter, failAfter < batch.count {
            throw SinkBatchError(delivered: failAfter, error: SinkError.retryable("disk full"))
        }
    }

    var delivered: [String] { state.withLock { $0.delivered } }
    var batchSizes: [Int] { state.withLock { $0.batchSizes } }
    func attempts(of event: String) -> [Int] { state.withLock { $0.attempts[event] ?? [] } }

    func waitForDeliveries(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async {
        if await !deliveries.wait(for: count) {
            Issue.record("only \(deliveries.count) of \(count) deliveries within 30 s", sourceLocation: sourceLocation)
        }
    }

    func entry(name: String) -> DeliveryEngine.SinkEntry {
        DeliveryEngine.SinkEntry(
            configuration: ConfiguredSink(
                name: name, type: Self.typeName, retry: EngineTests.fastRetry, concurrency: 1, factory: SinkFactory(defaultConcurrency: 1) { _ in self }),
            sink: self)
    }
}
