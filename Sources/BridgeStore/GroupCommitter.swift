import BridgeCore
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
///
/// Urgent writes that find the committer idle can wait a little for company too: while fewer
/// than `company` of them wait and the last transaction began less than `commitInterval` ago, the
/// next one waits for whichever comes first, the interval, enough company, or a deferred write's
/// own deadline. Urgent writes that came while a transaction was being made durable have waited a
/// commit already: half the company is enough for them. At a steady
/// 1,000 notifications/s (fast disk, so each would otherwise commit alone) 4 ms and a company of
/// 8 put about four in a transaction that writes the routing, cursor and index pages once for
/// all of them. Under load there is company at once and nothing waits; a lone notification after
/// a quiet spell commits at once too, and on a disk whose fsync takes longer than the interval
/// nothing ever waits. It adds at most `commitInterval` to an acknowledgement (Nagle's rule for
/// commits; PostgreSQL's `commit_delay` with `commit_siblings`).
final class GroupCommitter: Sendable {
    enum Urgency: Sendable {
        /// Start a transaction now if none is running (a POST waits for this write).
        case now
        /// Join the next transaction, or start one after `deferral`.
        case deferred
    }

    fileprivate struct Operation: Sendable {
        /// Runs inside the batch's transaction; throws to roll back its own savepoint.
        let run: @Sendable (Database) throws -> Void
        /// Called once the batch committed (nil) or failed (the error).
        let complete: @Sendable ((any Error)?) -> Void
        /// `.now`: a caller waits to acknowledge it.
        let urgent: Bool
    }

    fileprivate struct State {
        var pending: [Operation] = []
        var draining = false
        /// When the armed timer fires (time since the committer began); nil: none is armed.
        var timerDeadline: Duration?
        /// When the last transaction began.
        var lastStart: Duration?
        /// Urgent writes in `pending`.
        var urgentCount = 0
        /// Urgent writes queued behind the last commit wait: half the company is enough until the
        /// next transaction begins.
        var behindCommit = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    private let maxBatch: Int
    private let deferral: Duration
    private let commitInterval: Duration
    private let company: Int
    /// What the deferral and the interval are waited on.
    private let clock: any Clock<Duration>
    /// Time on `clock` since the committer began: deadlines and `lastStart` are measured on it.
    private let elapsed: @Sendable () -> Duration
    /// Called on the writer's thread before each batch runs (tests hold a commit open with it).
    private let beforeBatch: (@Sendable () -> Void)?
    /// Counts the transactions begun, a retry with savepoints included (see ``transaction``).
    private let transactions = Atomic<UInt64>(0)

    /// The number of the transaction the writes now running are in: a value a write computed from
    /// the file may be kept for the next write only while this number stays the same (another
    /// transaction may have failed and been rolled back in between).
    var transaction: UInt64 { transactions.load(ordering: .relaxed) }

    /// `commitInterval` zero (the default) or `company` 1: urgent writes never wait for company.
    init(
        pool: DatabasePool, maxBatch: Int = 2048, deferral: Duration = .milliseconds(3), commitInterval: Duration = .zero,
        company: Int = 1, clock: any Clock<Duration> = ContinuousClock(), beforeBatch: (@Sendable () -> Void)? = nil
    ) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.deferral = deferral
        self.commitInterval = commitInterval
        self.company = company
        self.clock = clock
        self.elapsed = clock.stopwatch()
        self.beforeBatch = beforeBatch
    }

    /// Writes waiting for a transaction (tests).
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Runs `work` in the next group transaction and returns its result once that is durable.
    func write<T: Sendable>(_ urgency: Urgency = .now, _ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit(urgency, work) { continuation.resume(with: $0) }
        }
    }

    /// Runs `work` in the next group transaction and calls `completion` with its result once that
    /// is durable (or with the error that kept it from being so), on the writer's thread: no task
    /// waits in between (the listener's event loops journal this way, see `NotificationIntake`).
    func submit<T: Sendable>(
        _ urgency: Urgency = .now, _ work: @escaping @Sendable (Database) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
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
                    completion(.failure(commitError))
                } else if let outcome = result.value.withLock({ $0 }) {
                    completion(outcome)
                } else {
                    completion(.failure(StoreError.internalInconsistency("write did not run")))
                }
            },
            urgent: urgency == .now
        )
        enqueue(operation)
    }

    private func enqueue(_ operation: Operation) {
        let next = state.withLock { state -> Next in
            state.pending.append(operation)
            if operation.urgent { state.urgentCount += 1 }
            if state.draining { return .nothing }
            // Read under the lock, so no transaction that began later has stamped `lastStart`.
            let now = elapsed()
            if state.urgentCount > 0 {
                guard let due = waitForCompany(state, now) else {
                    state.draining = true
                    state.timerDeadline = nil
                    return .drain
                }
                return state.arm(at: due)
            }
            return state.arm(at: now + deferral)
        }
        start(next)
    }

    fileprivate enum Next {
        case nothing
        case drain
        case timer(Duration)
    }

    private func start(_ next: Next) {
        switch next {
        case .nothing:
            break
        case .drain:
            pool.asyncWriteWithoutTransaction { db in self.drain(db) }
        case .timer(let deadline):
            startTimer(deadline)
        }
    }

    /// Starts a transaction for the waiting writes at `deadline`, unless an earlier timer took its
    /// place or a transaction is running. A task that sleeps, not a thread that waits.
    private func startTimer(_ deadline: Duration) {
        Task {
            try? await self.clock.sleep(for: max(.zero, deadline - self.elapsed()))
            let start = self.state.withLock { state -> Bool in
                guard state.timerDeadline == deadline else { return false }
                state.timerDeadline = nil
                if state.draining || state.pending.isEmpty { return false }
                state.draining = true
                return true
            }
            if start { self.pool.asyncWriteWithoutTransaction { db in self.drain(db) } }
        }
    }

    /// When the waiting urgent writes' transaction may begin, if not now: the end of the commit
    /// interval, while they are fewer than `company` (half of it for writes queued behind a commit).
    private func waitForCompany(_ state: State, _ now: Duration) -> Duration? {
        let enough = state.behindCommit ? max(1, company / 2) : company
        guard state.urgentCount < enough, let lastStart = state.lastStart, lastStart + commitInterval > now else { return nil }
        return lastStart + commitInterval
    }

    /// Runs on GRDB's writer queue (its own thread, never the cooperative pool): fsync blocks only it.
    /// The first batch is whatever is pending; after it, a batch with an urgent write goes on once
    /// it has half the company (or the interval is up), and deferred writes alone wait for company
    /// (the timer, or the next urgent write).
    private func drain(_ db: Database) {
        var first = true
        while true {
            let (batch, next) = state.withLock { state -> ([Operation], Next) in
                let now = elapsed()
                if !first || state.pending.isEmpty {
                    var wait: Next?
                    if state.pending.isEmpty {
                        wait = .nothing
                    } else if state.urgentCount == 0 {
                        wait = state.arm(at: now + deferral)
                    } else {
                        // Urgent writes that came while the last transaction was being made
                        // durable have waited a commit already: half the company will do (at 16
                        // connections, waiting for all of it merged two alternating groups of
                        // about eight into one, 0.88 of the throughput), counting those that
                        // join them before the next transaction begins.
                        state.behindCommit = true
                        if let due = waitForCompany(state, now) { wait = state.arm(at: due) }
                    }
                    if let wait {
                        state.draining = false
                        return ([], wait)
                    }
                }
                let count = min(state.pending.count, maxBatch)
                let batch = Array(state.pending.prefix(count))
                state.pending.removeFirst(count)
                state.urgentCount -= batch.count(where: \.urgent)
                state.lastStart = now
                state.behindCommit = false
                return (batch, .nothing)
            }
            if batch.isEmpty {
                start(next)
                return
            }
            first = false
            beforeBatch?()
            do {
                do {
                    transactions.add(1, ordering: .relaxed)
                    try db.inTransaction(.immediate) {
                        for operation in batch {
                            do { try operation.run(db) } catch { throw RetryWithSavepoints() }
                        }
                        return .commit
                    }
                } catch is RetryWithSavepoints {
                    // Every write runs again, each in its own savepoint; its result slot keeps the last outcome.
                    transactions.add(1, ordering: .relaxed)
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

extension GroupCommitter.State {
    /// Arms a timer for `deadline` unless one is armed for then or sooner (it starts the same
    /// transaction). A timer replaced by an earlier one does nothing when it fires.
    fileprivate mutating func arm(at deadline: Duration) -> GroupCommitter.Next {
        if let armed = timerDeadline, armed <= deadline { return .nothing }
        timerDeadline = deadline
        return .timer(deadline)
    }
}

/// A write in the plain transaction failed: roll it back and run the batch with savepoints.
private struct RetryWithSavepoints: Error {}

/// Where a write leaves its result until its transaction commits.
private final class ResultSlot<T: Sendable>: Sendable {
    let value = Mutex<Result<T, any Error>?>(nil)
}
