import Dispatch
import GRDB
import Synchronization

/// Group commit: writes submitted while a transaction is being made durable are gathered and
/// committed together in the next one, so one fsync serves many concurrent callers. One failing
/// write does not undo the others: a batch first runs as one plain transaction, and only when a
/// write in it throws is it rolled back and run again with a savepoint per write (savepoints cost
/// two statements per write, which the common case does not need). A caller resumes only after
/// the transaction holding its write has committed.
///
/// A write that no caller is waiting to acknowledge (routing, delivery outcomes) may be
/// `.deferred`: it waits up to `deferral` for a transaction to join, normally the next journal
/// write's, instead of starting one of its own. At a steady trickle that is one fsync per
/// notification instead of four (journal, routing, one outcome per sink); under load batches are
/// full anyway. Deferred writes that arrive while a transaction is being made durable wait the
/// same way: the next transaction starts at once only if a write that cannot wait is among them,
/// so fewer commits of routing and outcomes alone come between a POST and its own.
final class GroupCommitter: Sendable {
    enum Urgency: Sendable {
        /// Start a transaction now if none is running (a POST waits for this write).
        case now
        /// Join the next transaction, or start one after `deferral`.
        case deferred
    }

    private struct Operation: Sendable {
        /// Runs inside the batch's transaction; throws to roll back its own savepoint.
        let run: @Sendable (Database) throws -> Void
        /// Called once the batch committed (nil) or failed (the error).
        let complete: @Sendable ((any Error)?) -> Void
        /// `.now`: a caller waits to acknowledge it.
        let urgent: Bool
    }

    private struct State {
        var pending: [Operation] = []
        var draining = false
        var timerArmed = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    private let maxBatch: Int
    private let deferral: Duration
    /// What the deferral waits on.
    private let clock: any Clock<Duration>
    /// Called on the writer's thread before each batch runs (tests hold a commit open with it).
    private let beforeBatch: (@Sendable () -> Void)?

    init(
        pool: DatabasePool, maxBatch: Int = 2048, deferral: Duration = .milliseconds(3), clock: any Clock<Duration> = ContinuousClock(),
        beforeBatch: (@Sendable () -> Void)? = nil
    ) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.deferral = deferral
        self.clock = clock
        self.beforeBatch = beforeBatch
    }

    /// Writes waiting for a transaction (tests).
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Runs `work` in the next group transaction and returns its result once that is durable.
    func write<T: Sendable>(_ urgency: Urgency = .now, _ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let result = ResultSlot<T>()
            let operation = Operation(
                run: { db in
                    do {
                        let value = try work(db)
                        result.value.withLock { $0 = .success(value) }
                    } catch {
                        result.value.withLock { $0 = .failure(error) }
                        throw error
                    }
                },
                complete: { commitError in
                    if let commitError {
                        continuation.resume(throwing: commitError)
                    } else if let outcome = result.value.withLock({ $0 }) {
                        continuation.resume(with: outcome)
                    } else {
                        continuation.resume(throwing: StoreError.internalInconsistency("write did not run"))
                    }
                },
                urgent: urgency == .now
            )
            enqueue(operation, urgency)
        }
    }

    private func enqueue(_ operation: Operation, _ urgency: Urgency) {
        enum Next { case nothing, drain, armTimer }
        let next = state.withLock { state -> Next in
            state.pending.append(operation)
            if state.draining { return .nothing }
            switch urgency {
            case .now:
                state.draining = true
                return .drain
            case .deferred:
                if state.timerArmed { return .nothing }
                state.timerArmed = true
                return .armTimer
            }
        }
        switch next {
        case .nothing:
            break
        case .drain:
            pool.asyncWriteWithoutTransaction { db in self.drain(db) }
        case .armTimer:
            startTimer()
        }
    }

    /// Starts a transaction for the waiting writes after `deferral`, unless one started meanwhile.
    /// A task that sleeps, not a thread that waits: at most one is armed at a time (`timerArmed`).
    private func startTimer() {
        Task {
            try? await self.clock.sleep(for: self.deferral)
            let start = self.state.withLock { state -> Bool in
                state.timerArmed = false
                if state.draining || state.pending.isEmpty { return false }
                state.draining = true
                return true
            }
            if start { self.pool.asyncWriteWithoutTransaction { db in self.drain(db) } }
        }
    }

    /// Runs on GRDB's writer queue (its own thread, never the cooperative pool): fsync blocks only it.
    /// The first batch is whatever is pending; after it, only a batch with an urgent write goes
    /// on at once, and deferred writes alone wait for company (the timer, or the next urgent write).
    private func drain(_ db: Database) {
        var first = true
        while true {
            let (batch, armTimer) = state.withLock { state -> ([Operation], Bool) in
                if state.pending.isEmpty || (!first && !state.pending.contains(where: \.urgent)) {
                    state.draining = false
                    guard !state.pending.isEmpty, !state.timerArmed else { return ([], false) }
                    state.timerArmed = true
                    return ([], true)
                }
                let count = min(state.pending.count, maxBatch)
                let batch = Array(state.pending.prefix(count))
                state.pending.removeFirst(count)
                return (batch, false)
            }
            if armTimer { startTimer() }
            if batch.isEmpty { return }
            first = false
            beforeBatch?()
            do {
                do {
                    try db.inTransaction(.immediate) {
                        for operation in batch {
                            do { try operation.run(db) } catch { throw RetryWithSavepoints() }
                        }
                        return .commit
                    }
                } catch is RetryWithSavepoints {
                    // Every write runs again, each in its own savepoint; its result slot keeps the last outcome.
                    try db.inTransaction(.immediate) {
                        for operation in batch {
                            try? db.inSavepoint {
                                try operation.run(db)
                                return .commit
                            }
                        }
                        return .commit
                    }
                }
                for operation in batch { operation.complete(nil) }
            } catch {
                for operation in batch { operation.complete(error) }
            }
        }
    }
}

/// A write in the plain transaction failed: roll it back and run the batch with savepoints.
private struct RetryWithSavepoints: Error {}

/// Where a write leaves its result until its transaction commits.
private final class ResultSlot<T: Sendable>: Sendable {
    let value = Mutex<Result<T, any Error>?>(nil)
}
