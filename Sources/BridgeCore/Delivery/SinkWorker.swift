import Foundation
import Logging
import Metrics
import Synchronization

/// Delivers one sink's queue: at most `concurrency` deliveries at once (per replica), each outcome
/// recorded in the store. Every sink has its own worker, so a slow or failing sink holds up nobody
/// else.
///
/// Deliveries are claimed in the store for this worker's replica (``StateStore/claimDeliveries(sink:replica:now:limit:)``),
/// a few more than the free slots, so replicas sharing a store never deliver the same one at once
/// and a delivery whose outcome is being written is never taken again: its claim holds until the
/// outcome is durable. Waiting uses `clock`; dates (due, retry, dead) come from `wallClock`.
final class SinkWorker: Sendable {
    let name: String
    let replica: ReplicaID
    let clock: any Clock<Duration>
    let wallClock: @Sendable () -> Date
    let sink: any Sink
    let store: any StateStore
    let schedule: RetrySchedule
    let concurrency: Int
    let doorbell = Doorbell()
    let logger: Logger
    let shutdownGrace: Duration
    let backlog: Backlog
    /// Told of every delivery outcome recorded (the admin listener's `/events`).
    let activity: (any ActivityObserver)?
    private let stopping = Atomic<Bool>(false)

    init(
        name: String, sink: any Sink, store: any StateStore, retry: RetryPolicy, concurrency: Int, logger: Logger, shutdownGrace: Duration, backlog: Backlog,
        replica: ReplicaID, clock: any Clock<Duration> = ContinuousClock(), wallClock: @escaping @Sendable () -> Date = Date.init,
        activity: (any ActivityObserver)? = nil
    ) {
        self.activity = activity
        self.replica = replica
        self.clock = clock
        self.wallClock = wallClock
        self.backlog = backlog
        self.name = name
        self.sink = sink
        self.store = store
        self.schedule = RetrySchedule(policy: retry)
        self.concurrency = concurrency
        var logger = logger
        logger[metadataKey: "bridge.sink"] = "\(name)"
        self.logger = logger
        self.shutdownGrace = shutdownGrace
    }

    /// Stop taking new deliveries; the ones in flight get `shutdownGrace` to finish.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        doorbell.ring()
    }

    /// The most deliveries one claim takes for a sink that takes no batches (bounded memory: this
    /// many events per sink wait for a slot; a batching sink's claim is one batch).
    static let prefetch = 64

    /// How many deliveries one claim takes while the queue is short: a few per slot, so a claim
    /// is not one write per delivery, and few enough that replicas sharing a short queue share
    /// it; for a sink that takes batches, one whole batch. Claims that come back full grow to
    /// `prefetch` (``SinkWorkerStateMachine/claimLimit``).
    var claimBatch: Int { max(1, min(Self.prefetch, 4 * concurrency), min(sink.batchLimit, Self.batchCeiling)) }

    /// The most deliveries one call to a sink carries, whatever its ``Sink/batchLimit`` says
    /// (bounded memory: a claim holds this many events).
    static let batchCeiling = 512

    /// Runs until stopped: the loop only executes what ``SinkWorkerStateMachine`` decides.
    func run() async {
        await withTaskGroup(of: SinkWorkerStateMachine.Event.self) { group in
            var machine = SinkWorkerStateMachine(
                concurrency: concurrency, claimBatch: claimBatch, claimCeiling: max(claimBatch, Self.prefetch), batchLimit: min(sink.batchLimit, Self.batchCeiling),
                schedule: schedule,
                shutdownGrace: shutdownGrace)
            var event = SinkWorkerStateMachine.Event.turn(stopping: isStopping)
            // Retry jitter needs no secrecy: a generator of the worker's own, seeded apart from
            // other workers' and replicas', not a `getrandom(2)` per event.
            var jitter = SplitMix64(seed: .random(in: .min ... .max))
            loop: while true {
                var next: SinkWorkerStateMachine.Event?
                for action in machine.handle(event, now: wallClock(), random: Double.random(in: 0..<1, using: &jitter)) {
                    switch action {
                    case .claim(let limit):
                        do {
                            next = .claimed(try await store.claimDeliveries(sink: name, replica: replica, now: wallClock(), limit: limit))
                        } catch {
                            next = failedRead(error)
                        }
                    case .findNextDue:
                        do {
                            next = .nextDue(try await store.nextDueDate(sink: name, replica: replica, now: wallClock()))
                        } catch {
                            next = failedRead(error)
                        }
                    case .start(let delivery):
                        group.addTask { await self.attempt(delivery) }
                    case .startBatch(let batch):
                        group.addTask { await self.attempt(batch) }
                    case .record(let delivery, let record, let failures, let pause):
                        group.addTask {
                            if pause > .zero { try? await self.clock.sleep(for: pause) }
                            return await self.write(record, of: delivery, failures: failures)
                        }
                    case .recordSuccesses(let batch, let failures, let pause):
                        group.addTask {
                            if pause > .zero { try? await self.clock.sleep(for: pause) }
                            return await self.write(batch, failures: failures)
                        }
                    case .startWaiter(let timeout):
                        group.addTask {
                            await self.doorbell.wait(timeout: timeout, clock: self.clock)
                            return .woke
                        }
                    case .ringWaiter:
                        doorbell.ring()
                    case .startGraceTimer(let grace):
                        group.addTask {
                            try? await self.clock.sleep(for: grace)
                            return .graceOver
                        }
                    case .cancelAll:
                        group.cancelAll()
                    case .reportReadFailure:
                        break  // logged where the read failed
                    case .reportOutcomesWritable:
                        logger.notice("delivery outcomes are written again")
                    case .reportAbandoned(let count):
                        logger.warning("deliveries still in flight at shutdown stay queued for the next start", metadata: ["bridge.count": "\(count)"])
                    case .awaitStep:
                        guard let step = await group.next() else { break loop }
                        next = step
                    case .finish:
                        break loop
                    }
                }
                // A store answer or a finished task goes in next; after a step is handled, a new turn.
                event = next ?? .turn(stopping: isStopping)
            }
            group.cancelAll()
        }
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) || Task.isCancelled }

    /// A claim or next-due read that threw: cancellation stops, anything else is logged and retried.
    private func failedRead(_ error: any Error) -> SinkWorkerStateMachine.Event {
        if error is CancellationError { return .storeFailed(cancelled: true) }
        logger.error("reading the delivery queue failed; will retry", metadata: ["error": "\(error)"])
        return .storeFailed(cancelled: false)
    }

    /// One try of one delivery. A cancelled try reports `abandoned`: the delivery stays queued.
    private func attempt(_ delivery: Delivery) async -> SinkWorkerStateMachine.Event {
        let started = ContinuousClock.now
        do {
            try await sink.deliver(delivery.event, attempt: DeliveryAttempt(number: delivery.attempts + 1, deliveryID: delivery.id))
            return .delivered(delivery.id, .success(took: ContinuousClock.now - started))
        } catch {
            if Task.isCancelled { return .abandoned(delivery.id) }
            return .delivered(delivery.id, .failure(Self.sinkError(error)))
        }
    }

    /// What a sink threw, as the disposition it asks for: a ``SinkError`` as it is, anything else retried.
    private static func sinkError(_ error: any Error) -> SinkError {
        error as? SinkError ?? .retryable(String(describing: error))
    }

    /// One try of several deliveries in one call. A cancelled try reports `abandonedBatch`: they stay queued.
    private func attempt(_ batch: [Delivery]) async -> SinkWorkerStateMachine.Event {
        let started = ContinuousClock.now
        let delivered: Int
        let failure: SinkError
        do {
            try await sink.deliver(batch: batch.map { SinkDelivery(event: $0.event, attempt: DeliveryAttempt(number: $0.attempts + 1, deliveryID: $0.id)) })
            let took = ContinuousClock.now - started
            return .deliveredBatch(batch.map { (id: $0.id, outcome: .success(took: took)) })
        } catch let error as SinkBatchError {
            (delivered, failure) = (min(max(0, error.delivered), batch.count), Self.sinkError(error.error))
        } catch {
            (delivered, failure) = (0, Self.sinkError(error))
        }
        if Task.isCancelled { return .abandonedBatch(batch.map(\.id)) }
        let took = ContinuousClock.now - started
        return .deliveredBatch(batch.enumerated().map { index, delivery in
            (id: delivery.id, outcome: index < delivered ? .success(took: took) : .failure(failure))
        })
    }

    /// Writes a batch of successes as one change (their deliveries are deleted); `.successesNotRecorded`
    /// when the store refused it (`failures` times before this one).
    private func write(_ batch: [SinkWorkerStateMachine.Success], failures: Int) async -> SinkWorkerStateMachine.Event {
        do {
            try await store.recordSuccesses(deliveryIDs: batch.map(\.delivery.id))
        } catch {
            Counter(label: "graph_bridge_outcome_write_failures_total", dimensions: [("sink", name)]).increment()
            logger.error("recording delivery outcomes failed; will write them again", metadata: ["error": "\(error)", "bridge.count": "\(batch.count)"])
            return .successesNotRecorded(batch, failures: failures + 1)
        }
        backlog.finished(batch.count)
        Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "success")]).increment(by: batch.count)
        let duration = Timer(label: "graph_bridge_delivery_seconds", dimensions: [("sink", name)])
        for success in batch {
            activity?.record(.delivered(eventID: success.delivery.event.id, sink: name, outcome: .success, attempt: success.delivery.attempts + 1))
            duration.recordElapsed(success.took)
            if logger.logLevel <= .debug {
                logger.debug("delivered", metadata: ["bridge.event": "\(success.delivery.event.id)", "bridge.attempt": "\(success.delivery.attempts + 1)"])
            }
        }
        return .recordedSuccesses(batch.map(\.delivery.id))
    }

    /// Writes the outcome of a failed delivery the state machine decided: a retry or a dead letter
    /// updates it. `.notRecorded` when the store refused the write (`failures` times before this one).
    private func write(_ record: SinkWorkerStateMachine.Record, of delivery: Delivery, failures: Int) async -> SinkWorkerStateMachine.Event {
        let number = delivery.attempts + 1
        var logger = self.logger
        logger[metadataKey: "bridge.event"] = "\(delivery.event.id)"
        do {
            switch record {
            case .retry(let at, let error):
                try await store.recordRetry(deliveryID: delivery.id, attempts: number, nextAttemptAt: at, error: error)
                Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "retry")]).increment()
                activity?.record(.delivered(eventID: delivery.event.id, sink: name, outcome: .retry, attempt: number, error: error))
                logger.warning("delivery failed; will retry", metadata: [
                    "bridge.attempt": "\(number)", "bridge.retry_in": "\(String(format: "%.1fs", at.timeIntervalSince(wallClock())))", "error": "\(error)",
                ])
            case .deadLetter(let error, let at, let expired):
                try await store.recordDeadLetter(deliveryID: delivery.id, attempts: number, error: error, at: at)
                backlog.finished()
                Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "dead_letter")]).increment()
                activity?.record(.delivered(eventID: delivery.event.id, sink: name, outcome: .deadLetter, attempt: number, error: error))
                logger.error(
                    expired ? "delivery failed past retry.maxAge; kept as a dead letter" : "delivery failed permanently; kept as a dead letter",
                    metadata: ["bridge.attempt": "\(number)", "error": "\(error)"])
            }
        } catch {
            Counter(label: "graph_bridge_outcome_write_failures_total", dimensions: [("sink", name)]).increment()
            logger.error("recording a delivery outcome failed; will write it again", metadata: ["error": "\(error)"])
            return .notRecorded(delivery, record, failures: failures + 1)
        }
        return .recorded(delivery.id)
    }
}
