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
    private let stopping = Atomic<Bool>(false)

    init(
        name: String, sink: any Sink, store: any StateStore, retry: RetryPolicy, concurrency: Int, logger: Logger, shutdownGrace: Duration, backlog: Backlog,
        replica: ReplicaID, clock: any Clock<Duration> = ContinuousClock(), wallClock: @escaping @Sendable () -> Date = Date.init
    ) {
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

    private enum Step: Sendable {
        /// The sink returned or threw; the slot is free, the outcome still has to be recorded.
        case delivered(Int64, Outcome)
        /// The outcome is durable.
        case recorded(Int64)
        /// Writing the outcome failed `failures` times in a row (the store is unwritable).
        case notRecorded(Delivery, Outcome, failures: Int)
        /// A try was cancelled (shutdown): nothing recorded, the delivery stays queued.
        case abandoned(Int64)
        case woke
        case graceOver
    }

    private enum Outcome: Sendable {
        case success(Duration)
        case failure(SinkError)
    }

    /// At most this many claimed deliveries wait for a slot (bounded memory: this many events per sink).
    static let prefetch = 64

    /// How many deliveries one claim takes: a few per slot, so a claim is not one write per
    /// delivery, and few enough that replicas sharing a short queue share it.
    var claimBatch: Int { max(1, min(Self.prefetch, 4 * concurrency)) }

    func run() async {
        await withTaskGroup(of: Step.self) { group in
            // Deliveries claimed ahead, oldest first; handed to the sink as slots free up.
            var buffered: [Delivery] = []
            var inFlight: [Int64: Delivery] = [:]
            // Delivered, outcome being written (still claimed: nobody takes them meanwhile).
            var recording: Set<Int64> = []
            var waiting = false
            var waiterDeadline = Date.distantPast
            var graceTimer = false
            var storeFailures = 0
            // Outcomes the store refused, waiting to be written again. They stay in `recording`:
            // reading such a delivery back and trying it again would deliver it a second time (and
            // a third, as fast as the sink answers, for as long as the disk stays unwritable).
            // While any wait, no new delivery starts either: its outcome could not be written.
            var unrecorded: Set<Int64> = []
            while true {
                let isStopping = stopping.load(ordering: .relaxed) || Task.isCancelled
                var wait: Duration = .seconds(30)
                if !isStopping, inFlight.count < concurrency, unrecorded.isEmpty {
                    do {
                        var claimedNone = false
                        if buffered.isEmpty {
                            buffered = try await store.claimDeliveries(sink: name, replica: replica, now: wallClock(), limit: claimBatch)
                            claimedNone = buffered.isEmpty
                        }
                        while inFlight.count < concurrency, !buffered.isEmpty {
                            let delivery = buffered.removeFirst()
                            inFlight[delivery.id] = delivery
                            group.addTask { await self.attempt(delivery) }
                        }
                        if inFlight.count < concurrency, buffered.isEmpty {
                            let now = wallClock()
                            if let next = try await store.nextDueDate(sink: name, replica: replica, now: now) {
                                let due = next.timeIntervalSince(now)
                                // Due now yet nothing to claim: another replica took it first, or this
                                // replica's lease has lapsed (claims wait for the next renewal).
                                wait = claimedNone && due <= 0 ? .seconds(1) : .seconds(max(0.001, min(30, due)))
                            }
                        }
                        storeFailures = 0
                    } catch is CancellationError {
                        // Cancelled (a service failed to start): not a store failure. The next
                        // turn sees Task.isCancelled and stops like a graceful shutdown.
                        wait = .zero
                    } catch {
                        storeFailures += 1
                        logger.error("reading the delivery queue failed; will retry", metadata: ["error": "\(error)"])
                        wait = .milliseconds(min(5_000, 100 << min(storeFailures, 6)))
                    }
                }
                if isStopping {
                    if inFlight.isEmpty && recording.isEmpty { break }
                    if !graceTimer {
                        graceTimer = true
                        let grace = shutdownGrace
                        group.addTask {
                            try? await self.clock.sleep(for: grace)
                            return .graceOver
                        }
                    }
                } else if !waiting {
                    waiting = true
                    waiterDeadline = wallClock().addingTimeInterval(wait.seconds)
                    let timeout = wait
                    group.addTask {
                        await self.doorbell.wait(timeout: timeout, clock: self.clock)
                        return .woke
                    }
                } else if wallClock().addingTimeInterval(wait.seconds) < waiterDeadline.addingTimeInterval(-0.001) {
                    // Something is due sooner than the waiter will wake (a retry just got scheduled):
                    // wake it now so the next one waits the right time.
                    doorbell.ring()
                }
                guard let step = await group.next() else { break }
                switch step {
                case .delivered(let id, let outcome):
                    guard let delivery = inFlight.removeValue(forKey: id) else { continue }
                    // The slot is free for the next delivery while this outcome is written: a
                    // single-lane sink is not held to one fsync per event. (A crash before the
                    // write lands means one more delivery of this event: at-least-once.)
                    recording.insert(id)
                    group.addTask { await self.record(outcome, of: delivery, failures: 0) }
                case .recorded(let id):
                    recording.remove(id)
                    if unrecorded.remove(id) != nil, unrecorded.isEmpty {
                        logger.notice("delivery outcomes are written again")
                    }
                case .notRecorded(let delivery, let outcome, let failures):
                    // At shutdown the outcome is given up: the delivery stays queued and the next
                    // start delivers it again (at-least-once).
                    if isStopping {
                        recording.remove(delivery.id)
                        unrecorded.remove(delivery.id)
                        continue
                    }
                    unrecorded.insert(delivery.id)
                    let delay = Duration.milliseconds(min(2_000, 100 << min(failures - 1, 5)))
                    group.addTask {
                        try? await self.clock.sleep(for: delay)
                        return await self.record(outcome, of: delivery, failures: failures)
                    }
                case .abandoned(let id):
                    // Still claimed; the engine releases this replica's claims once every worker stopped.
                    inFlight.removeValue(forKey: id)
                case .woke:
                    waiting = false
                case .graceOver:
                    logger.warning("deliveries still in flight at shutdown stay queued for the next start", metadata: ["bridge.count": "\(inFlight.count)"])
                    group.cancelAll()
                }
            }
            group.cancelAll()
        }
    }

    /// One try of one delivery. A cancelled try reports `abandoned`: the delivery stays queued.
    private func attempt(_ delivery: Delivery) async -> Step {
        let started = ContinuousClock.now
        do {
            try await sink.deliver(delivery.event, attempt: DeliveryAttempt(number: delivery.attempts + 1, deliveryID: delivery.id))
            return .delivered(delivery.id, .success(ContinuousClock.now - started))
        } catch {
            if Task.isCancelled { return .abandoned(delivery.id) }
            return .delivered(delivery.id, .failure(error as? SinkError ?? .retryable(String(describing: error))))
        }
    }

    /// Makes one outcome durable: success deletes the delivery, a failure schedules a retry or a
    /// dead letter. `.notRecorded` when the store refused the write (`failures` times before this one).
    private func record(_ outcome: Outcome, of delivery: Delivery, failures: Int) async -> Step {
        let number = delivery.attempts + 1
        var logger = self.logger
        logger[metadataKey: "bridge.event"] = "\(delivery.event.id)"
        switch outcome {
        case .success(let took):
            do {
                try await store.recordSuccess(deliveryID: delivery.id)
                backlog.finished()
                Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "success")]).increment()
                Timer(label: "graph_bridge_delivery_seconds", dimensions: [("sink", name)]).recordElapsed(took)
                logger.debug("delivered", metadata: ["bridge.attempt": "\(number)"])
            } catch {
                logger.error("recording a delivery outcome failed; will write it again", metadata: ["error": "\(error)"])
                return .notRecorded(delivery, outcome, failures: failures + 1)
            }
        case .failure(let error):
            do {
                try await recordFailure(delivery, attempt: number, error: error, logger: logger)
            } catch {
                logger.error("recording a delivery outcome failed; will write it again", metadata: ["error": "\(error)"])
                return .notRecorded(delivery, outcome, failures: failures + 1)
            }
        }
        return .recorded(delivery.id)
    }

    private func recordFailure(_ delivery: Delivery, attempt number: Int, error sinkError: SinkError, logger: Logger) async throws {
        let now = wallClock()
        switch sinkError.disposition {
        case .permanent:
            try await store.recordDeadLetter(deliveryID: delivery.id, attempts: number, error: sinkError.message, at: now)
            backlog.finished()
            Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "dead_letter")]).increment()
            logger.error("delivery failed permanently; kept as a dead letter", metadata: ["bridge.attempt": "\(number)", "error": "\(sinkError.message)"])
        case .retry(let retryAfter):
            switch schedule.decide(attempts: number, createdAt: delivery.createdAt, now: now, retryAfter: retryAfter, random: Double.random(in: 0..<1)) {
            case .retry(let at):
                try await store.recordRetry(deliveryID: delivery.id, attempts: number, nextAttemptAt: at, error: sinkError.message)
                Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "retry")]).increment()
                logger.warning("delivery failed; will retry", metadata: [
                    "bridge.attempt": "\(number)", "bridge.retry_in": "\(String(format: "%.1fs", at.timeIntervalSince(now)))", "error": "\(sinkError.message)",
                ])
            case .deadLetter:
                try await store.recordDeadLetter(deliveryID: delivery.id, attempts: number, error: sinkError.message, at: now)
                backlog.finished()
                Counter(label: "graph_bridge_deliveries_total", dimensions: [("sink", name), ("outcome", "dead_letter")]).increment()
                logger.error("delivery failed past retry.maxAge; kept as a dead letter", metadata: ["bridge.attempt": "\(number)", "error": "\(sinkError.message)"])
            }
        }
    }
}
