import Foundation

/// The sink worker's decisions as a value: what to claim, which delivery to start, what outcome
/// to write, when to wait, how to stop. The worker's loop feeds it what happened (``Event``) and
/// executes the ``Action``s it returns; the machine does no I/O, reads no clock (`now` and the
/// jitter come with each event) and is tested without a store or a sink.
///
/// A loop turn: ``Event/turn(stopping:)`` asks for a claim when a slot is free and nothing
/// claimed is waiting; ``Event/claimed(_:)`` starts deliveries and, with slots still free, asks
/// when the next one is due; ``Event/nextDue(_:)`` (or ``Event/storeFailed(cancelled:)``)
/// decides the wait; the turn ends with ``Action/awaitStep`` (the loop waits for its next task
/// to finish and feeds that in) or ``Action/finish``.
///
/// Successes are written in batches: the first is written at once, and those that finish while a
/// batch is being written wait for it and go together in the next (``Action/recordSuccesses(_:failures:after:)``),
/// so at a trickle nothing waits and under load a write carries many (one write and one wake-up
/// for them all, where each was a write of its own). Retries and dead letters are written one by one.
///
/// A sink with a ``Sink/batchLimit`` above 1 gets what is claimed, up to that many, in one call
/// (``Action/startBatch(_:)``, answered by ``Event/deliveredBatch(_:)``): a call takes a slot,
/// whatever it carries. Nothing waits to fill a batch; under load a claim brings many.
///
/// What it guarantees: never more than `concurrency` calls to the sink in flight; a delivery's outcome
/// is written before its claim ends (the store never hands it out again meanwhile); while an
/// outcome cannot be written, nothing new is claimed (its outcome could not be written either)
/// and the write is tried again with backoff; at a stop, nothing new starts, the deliveries in
/// flight get `shutdownGrace`, and unwritten outcomes are given up (the claim is released and
/// the delivery tried again later: at-least-once).
struct SinkWorkerStateMachine {
    /// What the sink did with one delivery.
    enum Outcome: Sendable {
        case success(took: Duration)
        case failure(SinkError)
    }

    /// A delivery that succeeded, its outcome to write in a batch.
    struct Success: Sendable, Equatable {
        var delivery: Delivery
        /// How long the sink took (for the delivery-time metric).
        var took: Duration
    }

    /// The outcome of a failed delivery, written on its own (successes go in batches: ``Success``).
    enum Record: Sendable, Equatable {
        case retry(at: Date, error: String)
        /// `expired`: retry.maxAge has passed; otherwise the sink refused it for good.
        case deadLetter(error: String, at: Date, expired: Bool)
    }

    enum Event: Sendable {
        /// The start of a loop turn; `stopping`: a stop was asked for (or the task is cancelled).
        case turn(stopping: Bool)
        /// The store's answer to ``Action/claim(limit:)``.
        case claimed([Delivery])
        /// The store's answer to ``Action/findNextDue``: when the next claimable delivery is due.
        case nextDue(Date?)
        /// A claim or next-due read failed; `cancelled`: by cancellation, not the store.
        case storeFailed(cancelled: Bool)
        /// The sink returned or threw for this delivery.
        case delivered(Int64, Outcome)
        /// The sink returned or threw for a batch: each delivery's outcome, in the batch's order.
        case deliveredBatch([(id: Int64, outcome: Outcome)])
        /// The outcome of this delivery is durable.
        case recorded(Int64)
        /// Writing this outcome failed; `failures` in a row so far.
        case notRecorded(Delivery, Record, failures: Int)
        /// The batch of successes with these ids is durable.
        case recordedSuccesses([Int64])
        /// Writing this batch of successes failed; `failures` in a row so far.
        case successesNotRecorded([Success], failures: Int)
        /// A try was cancelled (shutdown): nothing recorded.
        case abandoned(Int64)
        /// A batch's try was cancelled (shutdown): nothing recorded.
        case abandonedBatch([Int64])
        /// The waiter returned (rung, or its time is up).
        case woke
        /// The shutdown grace period is over.
        case graceOver
    }

    enum Action: Sendable, Equatable {
        /// Claim up to `limit` due deliveries; feed ``Event/claimed(_:)`` or ``Event/storeFailed(cancelled:)``.
        case claim(limit: Int)
        /// Hand this delivery to the sink; feed ``Event/delivered(_:_:)`` or ``Event/abandoned(_:)``.
        case start(Delivery)
        /// Hand these deliveries (two or more, oldest first) to the sink in one call; feed
        /// ``Event/deliveredBatch(_:)`` or ``Event/abandonedBatch(_:)``.
        case startBatch([Delivery])
        /// Ask when the next claimable delivery is due; feed ``Event/nextDue(_:)`` or ``Event/storeFailed(cancelled:)``.
        case findNextDue
        /// Write an outcome, after `after` (a pause before writing again); feed ``Event/recorded(_:)``
        /// or ``Event/notRecorded(_:_:failures:)``.
        case record(Delivery, Record, failures: Int, after: Duration)
        /// Write these successes as one change, after `after`; feed ``Event/recordedSuccesses(_:)``
        /// or ``Event/successesNotRecorded(_:failures:)``.
        case recordSuccesses([Success], failures: Int, after: Duration)
        /// Start the waiter: it returns (``Event/woke``) when rung or after this long.
        case startWaiter(Duration)
        /// Wake the waiter now: something is due before it would wake.
        case ringWaiter
        /// Start the shutdown grace period (``Event/graceOver`` after this long).
        case startGraceTimer(Duration)
        /// Cancel every task: the grace period is over.
        case cancelAll
        /// Reading the queue failed `failures` times in a row (log it).
        case reportReadFailure(failures: Int)
        /// Outcomes are written again after failing (log it).
        case reportOutcomesWritable
        /// The grace period ended with `count` deliveries in flight (log it).
        case reportAbandoned(count: Int)
        /// Wait for the next task to finish and feed its event.
        case awaitStep
        /// The worker is done.
        case finish
    }

    let concurrency: Int
    /// How many deliveries a claim takes while the queue is short.
    let claimBatch: Int
    /// The most a claim takes once claims come back full (a long queue: a backlog, a burst).
    let claimCeiling: Int
    /// The most deliveries one call to the sink carries (``Sink/batchLimit``).
    let batchLimit: Int
    let schedule: RetrySchedule
    let shutdownGrace: Duration

    /// Claimed, not started yet, oldest first (a slice: starting one moves its start, not the rest).
    private(set) var buffered: ArraySlice<Delivery> = []
    private(set) var inFlight: [Int64: Delivery] = [:]
    /// Calls to the sink in flight (each holds a slot; a batch is one call for many of `inFlight`).
    private(set) var calls = 0
    /// What the next claim asks for: `claimBatch`, doubled after each claim that came back full,
    /// up to `claimCeiling`, and `claimBatch` again after one that did not.
    private(set) var claimLimit: Int
    /// Delivered, outcome being written (still claimed).
    private(set) var recording: Set<Int64> = []
    /// Outcomes the store refused, being written again. While any wait, nothing new is claimed.
    private(set) var unrecorded: Set<Int64> = []
    /// Successes waiting for the batch being written, oldest first (their ids are in `recording`).
    private(set) var pendingSuccesses: [Success] = []
    /// Whether a batch of successes is being written.
    private(set) var writingSuccesses = false
    private(set) var stopping = false
    private var waiting = false
    private var waiterDeadline = Date.distantPast
    private var graceTimer = false
    private var readFailures = 0
    /// The wait this turn ends with, if it ends waiting.
    private var wait: Duration = .seconds(30)
    private var claimedNone = false

    /// The longest wait: the queue is read again at least this often (another replica's retries
    /// ring no doorbell here).
    static let maximumWait: Duration = .seconds(30)
    /// The wait when something is due but nothing could be claimed (another replica took it, or
    /// this replica's lease lapsed until its next renewal).
    static let contendedWait: Duration = .seconds(1)

    init(concurrency: Int, claimBatch: Int, claimCeiling: Int? = nil, batchLimit: Int = 1, schedule: RetrySchedule, shutdownGrace: Duration) {
        self.concurrency = max(1, concurrency)
        self.claimBatch = max(1, claimBatch)
        self.claimCeiling = max(self.claimBatch, claimCeiling ?? claimBatch)
        self.claimLimit = self.claimBatch
        self.batchLimit = max(1, batchLimit)
        self.schedule = schedule
        self.shutdownGrace = shutdownGrace
    }

    /// Feeds one event in; `now` is the wall clock's, `random` in 0..<1 the jitter of a retry.
    mutating func handle(_ event: Event, now: Date, random: Double = 0.5) -> [Action] {
        switch event {
        case .turn(let stop):
            stopping = stopping || stop
            wait = Self.maximumWait
            claimedNone = false
            guard !stopping, calls < concurrency, unrecorded.isEmpty else { return endTurn(now: now) }
            if buffered.isEmpty { return [.claim(limit: claimLimit)] }
            return fill(now: now)

        case .claimed(let deliveries):
            buffered = deliveries[...]
            claimedNone = deliveries.isEmpty
            // A full claim says the queue is long: fewer, larger claims (each is a read and a
            // hop). A short one says it is short: a few per slot, so replicas share it.
            claimLimit = deliveries.count >= claimLimit ? min(claimCeiling, claimLimit * 2) : claimBatch
            return fill(now: now)

        case .nextDue(let next):
            if let next {
                let due = next.timeIntervalSince(now)
                wait = claimedNone && due <= 0 ? Self.contendedWait : .seconds(max(0.001, min(Self.maximumWait.seconds, due)))
            }
            readFailures = 0
            return endTurn(now: now)

        case .storeFailed(let cancelled):
            // Cancelled (a service failed to start): the next turn sees it and stops.
            if cancelled {
                wait = .zero
                return endTurn(now: now)
            }
            readFailures += 1
            wait = .milliseconds(min(5_000, 100 << min(readFailures, 6)))
            return [.reportReadFailure(failures: readFailures)] + endTurn(now: now)

        case .delivered(let id, let outcome):
            guard inFlight[id] != nil else { return [] }
            calls -= 1
            return finished(id, outcome, now: now, random: random) + writeSuccesses(failures: 0, after: .zero)

        case .deliveredBatch(let outcomes):
            guard outcomes.contains(where: { inFlight[$0.id] != nil }) else { return [] }
            calls -= 1
            // Failures first, then the successes in one write (the order of the writes does not
            // matter: each delivery is still claimed until its own lands).
            return outcomes.flatMap { finished($0.id, $0.outcome, now: now, random: random) } + writeSuccesses(failures: 0, after: .zero)

        case .recordedSuccesses(let ids):
            writingSuccesses = false
            recording.subtract(ids)
            let wasUnrecorded = !unrecorded.isEmpty
            unrecorded.subtract(ids)
            let report: [Action] = wasUnrecorded && unrecorded.isEmpty ? [.reportOutcomesWritable] : []
            return report + writeSuccesses(failures: 0, after: .zero)

        case .successesNotRecorded(let batch, let failures):
            writingSuccesses = false
            if stopping {
                // Given up, as a single outcome is (see ``Event/notRecorded(_:_:failures:)``);
                // the successes that finished meanwhile are still tried.
                for success in batch {
                    recording.remove(success.delivery.id)
                    unrecorded.remove(success.delivery.id)
                }
                return writeSuccesses(failures: 0, after: .zero)
            }
            unrecorded.formUnion(batch.map(\.delivery.id))
            pendingSuccesses = batch + pendingSuccesses
            return writeSuccesses(failures: failures, after: .milliseconds(min(2_000, 100 << min(failures - 1, 5))))

        case .recorded(let id):
            recording.remove(id)
            if unrecorded.remove(id) != nil, unrecorded.isEmpty { return [.reportOutcomesWritable] }
            return []

        case .notRecorded(let delivery, let record, let failures):
            // At a stop the outcome is given up: the claim is released with the replica and the
            // delivery tried again (at-least-once).
            if stopping {
                recording.remove(delivery.id)
                unrecorded.remove(delivery.id)
                return []
            }
            unrecorded.insert(delivery.id)
            return [.record(delivery, record, failures: failures, after: .milliseconds(min(2_000, 100 << min(failures - 1, 5))))]

        case .abandoned(let id):
            if inFlight.removeValue(forKey: id) != nil { calls -= 1 }
            return []

        case .abandonedBatch(let ids):
            if ids.map({ inFlight.removeValue(forKey: $0) }).contains(where: { $0 != nil }) { calls -= 1 }
            return []

        case .woke:
            waiting = false
            return []

        case .graceOver:
            return [.reportAbandoned(count: inFlight.count), .cancelAll]
        }
    }

    /// A delivery the sink is done with: its success joins the next batch to write, its failure
    /// is written at once. The slot is free for the next delivery while the outcome is written:
    /// a single-lane sink is not held to one write per event. (A crash before the write lands
    /// means one more delivery of this event: at-least-once.)
    private mutating func finished(_ id: Int64, _ outcome: Outcome, now: Date, random: Double) -> [Action] {
        guard let delivery = inFlight.removeValue(forKey: id) else { return [] }
        recording.insert(id)
        switch outcome {
        case .success(let took):
            pendingSuccesses.append(Success(delivery: delivery, took: took))
            return []
        case .failure(let error):
            return [.record(delivery, decide(error, for: delivery, now: now, random: random), failures: 0, after: .zero)]
        }
    }

    /// What to write for a delivery that failed with `error`.
    func decide(_ error: SinkError, for delivery: Delivery, now: Date, random: Double) -> Record {
        switch error.disposition {
        case .permanent:
            return .deadLetter(error: error.message, at: now, expired: false)
        case .retry(let retryAfter):
            switch schedule.decide(
                attempts: delivery.attempts + 1, createdAt: delivery.createdAt, now: now, retryAfter: retryAfter, random: random)
            {
            case .retry(let at): return .retry(at: at, error: error.message)
            case .deadLetter: return .deadLetter(error: error.message, at: now, expired: true)
            }
        }
    }

    /// Writes the waiting successes as one batch unless a batch is being written (they go in the
    /// next, when it is done).
    private mutating func writeSuccesses(failures: Int, after pause: Duration) -> [Action] {
        guard !writingSuccesses, !pendingSuccesses.isEmpty else { return [] }
        writingSuccesses = true
        defer { pendingSuccesses = [] }
        return [.recordSuccesses(pendingSuccesses, failures: failures, after: pause)]
    }

    /// Starts claimed deliveries while slots are free; asks for the next due date when slots stay free.
    private mutating func fill(now: Date) -> [Action] {
        var actions: [Action] = []
        while calls < concurrency, !buffered.isEmpty {
            let batch = buffered.prefix(batchLimit)
            buffered.removeFirst(batch.count)
            for delivery in batch { inFlight[delivery.id] = delivery }
            calls += 1
            actions.append(batch.count == 1 ? .start(batch[batch.startIndex]) : .startBatch(Array(batch)))
        }
        if calls < concurrency, buffered.isEmpty { return actions + [.findNextDue] }
        readFailures = 0
        return actions + endTurn(now: now)
    }

    /// How the turn ends: done, the grace timer, the waiter, or only waiting for the next step.
    private mutating func endTurn(now: Date) -> [Action] {
        if stopping {
            if inFlight.isEmpty && recording.isEmpty { return [.finish] }
            if graceTimer { return [.awaitStep] }
            graceTimer = true
            return [.startGraceTimer(shutdownGrace), .awaitStep]
        }
        if !waiting {
            waiting = true
            waiterDeadline = now.addingTimeInterval(wait.seconds)
            return [.startWaiter(wait), .awaitStep]
        }
        if now.addingTimeInterval(wait.seconds) < waiterDeadline.addingTimeInterval(-0.001) {
            // Something is due sooner than the waiter will wake (a retry just got scheduled): wake
            // it now so the next one waits the right time.
            return [.ringWaiter, .awaitStep]
        }
        return [.awaitStep]
    }
}
