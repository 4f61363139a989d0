import BridgeCore
import Synchronization

/// Group commit for the PostgreSQL journal: journal requests that arrive while a batch is being
/// committed wait and go together into the next batch, one transaction with one multi-row
/// statement per table and one `COMMIT` (one WAL flush) for all of them. Each request is answered
/// with its own outcomes, and only once the transaction holding its entries has committed.
///
/// One batch is in flight at a time: under load the batches grow instead of the transactions
/// multiplying, and the store's other pooled connections stay free for routing and deliveries.
///
/// A batch that the server refuses for a statement's sake (a constraint, a deadlock with another
/// replica: ``PostgresBatchError/retryAlone``) does not fail its unrelated requests: it is rolled
/// back and each request runs again in a transaction of its own, so only the one at fault fails
/// (SQLite's `GroupCommitter` uses savepoints for the same end). A batch that fails for the
/// connection's sake (the server is gone) fails every request in it at once.
///
/// A request whose task is cancelled (the intake's journal deadline) is answered with
/// `CancellationError` at once. Waiting in the queue, it leaves it and is never written; in the
/// batch in flight, that batch may still commit it (the intake answered 503, so Graph's retry is
/// a duplicate). A batch that no request waits for any more is cancelled and the next one starts
/// without waiting for it to end: a query on a connection the server dropped without a word can
/// hang, and must hold up no more than the requests it carried (as one request's transaction
/// did before batches).
final class PostgresGroupCommitter: Sendable {
    /// Commits one batch (the entries of each request, in arrival order) in one transaction and
    /// returns each request's outcomes; throws ``PostgresBatchError``.
    typealias Batch = @Sendable ([[JournalEntry]]) async throws -> [[JournalOutcome]]
    /// Commits one request's entries in a transaction of its own.
    typealias Alone = @Sendable ([JournalEntry]) async throws -> [JournalOutcome]

    private struct Waiter {
        var entries: [JournalEntry]
        var continuation: CheckedContinuation<[JournalOutcome], any Error>?
        /// Cancelled before its continuation was there.
        var cancelled = false
    }

    private typealias Answer = Result<[JournalOutcome], any Error>

    /// The batch in flight: the next one starts when it ends or nobody waits for it any more.
    private struct Running {
        var number: UInt64
        var ids: [UInt64]
        var task: Task<Void, Never>?
    }

    private struct State {
        var nextID: UInt64 = 0
        /// Every request not answered yet, by id.
        var waiters: [UInt64: Waiter] = [:]
        /// Ids in arrival order that wait for the next batch (a cancelled one is skipped when taken).
        var queue: [UInt64] = []
        var batchNumber: UInt64 = 0
        var running: Running?
        var statistics = PostgresStateStore.JournalCommitStatistics()
    }

    private let state = Mutex(State())
    private let batch: Batch
    private let alone: Alone
    /// At most this many entries in one batch (a single request larger than this is a batch of its own).
    private let maxEntries: Int

    init(maxEntries: Int = 4096, batch: @escaping Batch, alone: @escaping Alone) {
        self.maxEntries = maxEntries
        self.batch = batch
        self.alone = alone
    }

    /// What the committer did so far, and how many requests wait for the next batch.
    var statistics: PostgresStateStore.JournalCommitStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.waiting = state.queue.count { state.waiters[$0] != nil }
            return statistics
        }
    }

    /// Journals `entries` in the next batch; returns once that batch has committed.
    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        let id = state.withLock { state in
            state.nextID += 1
            state.waiters[state.nextID] = Waiter(entries: entries)
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[JournalOutcome], any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if state.waiters[id]?.cancelled ?? true {
                        state.waiters[id] = nil
                        return true
                    }
                    state.waiters[id]?.continuation = continuation
                    state.queue.append(id)
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    startBatch()
                }
            }
        } onCancel: {
            cancel(id)
        }
    }

    private func cancel(_ id: UInt64) {
        let (continuation, abandoned) = state.withLock { state -> (CheckedContinuation<[JournalOutcome], any Error>?, Running?) in
            guard let waiter = state.waiters[id] else { return (nil, nil) }
            guard let continuation = waiter.continuation else {
                state.waiters[id]?.cancelled = true
                return (nil, nil)
            }
            state.waiters[id] = nil
            guard let running = state.running, running.ids.contains(id), running.task != nil,
                running.ids.allSatisfy({ state.waiters[$0] == nil })
            else { return (continuation, nil) }
            state.running = nil
            state.statistics.abandoned += 1
            return (continuation, running)
        }
        continuation?.resume(throwing: CancellationError())
        if let abandoned {
            // A batch stuck on a connection that does not answer holds up nobody: the next one starts.
            abandoned.task?.cancel()
            startBatch()
        }
    }

    /// Starts the next batch in a task of its own, unless one is in flight or nobody waits. Called
    /// when a request arrives and when a batch ends or is abandoned: batches follow each other
    /// with no task in between.
    private func startBatch() {
        guard let (number, ids, groups) = takeBatch() else { return }
        let task = Task { self.finish(number, ids, await self.run(groups)) }
        let abandoned = state.withLock { state -> Bool in
            guard state.running?.number == number else { return false }
            state.running?.task = task
            guard ids.allSatisfy({ state.waiters[$0] == nil }) else { return false }
            state.running = nil
            state.statistics.abandoned += 1
            return true
        }
        if abandoned {
            task.cancel()
            startBatch()
        }
    }

    /// Answers the requests of batch `number` that still wait, and starts the next batch.
    private func finish(_ number: UInt64, _ ids: [UInt64], _ results: [Answer]) {
        typealias Answers = [(CheckedContinuation<[JournalOutcome], any Error>, Answer)]
        let (answers, next) = state.withLock { state -> (Answers, Bool) in
            var answers: Answers = []
            for (id, result) in zip(ids, results) {
                if let continuation = state.waiters.removeValue(forKey: id)?.continuation { answers.append((continuation, result)) }
            }
            guard let running = state.running, running.number == number else { return (answers, false) }
            state.running = nil
            return (answers, true)
        }
        // The next batch first: the answered requests' tasks then run while it commits.
        if next { startBatch() }
        for (continuation, result) in answers { continuation.resume(with: result) }
    }

    /// The next batch, now running; nil when one is in flight or nobody waits.
    private func takeBatch() -> (UInt64, [UInt64], [[JournalEntry]])? {
        state.withLock { state in
            guard state.running == nil else { return nil }
            var ids: [UInt64] = []
            var groups: [[JournalEntry]] = []
            var count = 0
            var taken = 0
            for id in state.queue {
                guard let waiter = state.waiters[id] else {
                    taken += 1
                    continue
                }
                if !ids.isEmpty && count + waiter.entries.count > maxEntries { break }
                ids.append(id)
                groups.append(waiter.entries)
                count += waiter.entries.count
                taken += 1
            }
            state.queue.removeFirst(taken)
            if ids.isEmpty { return nil }
            state.batchNumber += 1
            state.running = Running(number: state.batchNumber, ids: ids, task: nil)
            return (state.batchNumber, ids, groups)
        }
    }

    /// One batch; when the server refuses it for a statement's sake, each request alone.
    private func run(_ groups: [[JournalEntry]]) async -> [Answer] {
        do {
            let outcomes = try await batch(groups)
            state.withLock { state in
                state.statistics.batches += 1
                state.statistics.requests += groups.count
            }
            return outcomes.map { .success($0) }
        } catch let error as PostgresBatchError where error.retryAlone && groups.count > 1 {
            state.withLock { $0.statistics.fallbacks += 1 }
            var results: [Answer] = []
            for group in groups {
                do {
                    results.append(.success(try await alone(group)))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        } catch let error as PostgresBatchError {
            return groups.map { _ in .failure(error.underlying) }
        } catch {
            return groups.map { _ in .failure(error) }
        }
    }
}

/// A journal batch failed; `underlying` is what its requests are told.
struct PostgresBatchError: Error {
    var underlying: any Error
    /// The server refused a statement (a constraint, a deadlock): the requests may succeed one by one.
    var retryAlone: Bool
}

extension PostgresStateStore {
    /// What the journal's group committer did since the store opened (for tests and benchmarks).
    public struct JournalCommitStatistics: Sendable, Equatable {
        /// Batches committed, each one transaction.
        public var batches = 0
        /// Journal requests those batches answered (`requests / batches`: the mean batch size).
        public var requests = 0
        /// Batches the server refused that then ran request by request.
        public var fallbacks = 0
        /// Batches given up while in flight: every request in them was cancelled (the intake's
        /// deadline) before the batch ended, so the next batch did not wait for it.
        public var abandoned = 0
        /// Requests waiting for the next batch now.
        public var waiting = 0

        public init() {}
    }
}
