import Synchronization

/// Which sinks have no pending row in `deliveries` (a retry, a delivery routed out of order, a
/// dead letter sent back), as last seen: a sink that keeps up has only cursor deliveries, which
/// live in memory, so its claims need no read of the file (``SQLiteStateStore/claimDeliveries``).
///
/// A read that finds no pending row for a sink says so with the epoch it began under; every
/// commit that may have added rows bumps the epoch (after the commit) and forgets what was known.
/// So a sink is known to have none only from a snapshot taken after the last such commit: a read
/// whose snapshot came before it began under an older epoch, and its word is refused. A claim made
/// from memory between such a commit and its bump is one serialized just before the commit.
final class PendingRows: Sendable {
    private let state = Mutex<(epoch: UInt64, none: Set<String>)>((0, []))

    /// Read before a read transaction begins; handed back to ``observedNone(_:since:)``.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Whether `sink` is known to have no pending row.
    func hasNone(_ sink: String) -> Bool { state.withLock { $0.none.contains(sink) } }

    /// A read that began under `epoch` found no pending row of `sink`.
    func observedNone(_ sink: String, since epoch: UInt64) {
        state.withLock { state in
            if state.epoch == epoch { state.none.insert(sink) }
        }
    }

    /// A commit may have added pending rows (to any sink): nothing is known any more.
    func mayHaveAdded() {
        state.withLock { state in
            state.epoch &+= 1
            state.none.removeAll()
        }
    }
}

/// The replicas' leases as the last claim read them, for claims made from memory: exact while no
/// lease changes, and every lease change goes through this store (one process holds the file),
/// which forgets them after its commit. A read that began before such a commit is not remembered.
final class LeaseMemo: Sendable {
    private let state = Mutex<(epoch: UInt64, leases: [String: Double]?, readAt: Double)>((0, nil, 0))

    /// How long after their read the leases stand (seconds): a bound, should a change ever bypass
    /// ``changed()``.
    static let validity = 1.0

    /// Read before a read transaction begins; handed back to ``remember(_:readAt:since:)``.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// A read that began under `epoch` found these leases (replica id → alive until, seconds).
    func remember(_ leases: [String: Double], readAt: Double, since epoch: UInt64) {
        state.withLock { state in
            if state.epoch == epoch { (state.leases, state.readAt) = (leases, readAt) }
        }
    }

    /// The replicas whose lease holds at `seconds`, if the leases were read within ``validity``.
    func live(at seconds: Double) -> Set<String>? {
        state.withLock { state in
            guard let leases = state.leases, seconds >= state.readAt, seconds - state.readAt < Self.validity else { return nil }
            return Self.live(leases, at: seconds)
        }
    }

    /// The replicas of `leases` (id → alive until) whose lease holds at `seconds`.
    static func live(_ leases: [String: Double], at seconds: Double) -> Set<String> {
        Set(leases.filter { $0.value > seconds }.keys)
    }

    /// A lease was registered, renewed or released: read them again.
    func changed() {
        state.withLock { state in
            state.epoch &+= 1
            state.leases = nil
        }
    }
}
