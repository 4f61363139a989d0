import Synchronization

/// How much durable work is waiting: journaled events not yet routed plus deliveries not yet
/// done. The intake refuses new notifications (503, Graph retries) once it reaches
/// `state.maxQueuedDeliveries`, so an outage of every sink grows the queue to a bound, not
/// without end. Kept in memory by the engine and resynchronised from the store every few seconds.
public final class Backlog: Sendable {
    private let unrouted = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    /// nil: no limit.
    public let limit: Int?

    public init(limit: Int?) { self.limit = limit }

    public var total: Int { unrouted.load(ordering: .relaxed) + pending.load(ordering: .relaxed) }

    /// Whether new notifications must be refused.
    public var isFull: Bool {
        guard let limit else { return false }
        return total >= limit
    }

    func journaled(_ count: Int) { unrouted.add(count, ordering: .relaxed) }

    func routed(events: Int, deliveries: Int) {
        unrouted.subtract(events, ordering: .relaxed)
        pending.add(deliveries, ordering: .relaxed)
    }

    func finished(_ count: Int = 1) { pending.subtract(count, ordering: .relaxed) }

    /// The store's own counts (other processes, e.g. `dead-letters retry`, change them too).
    func resynchronise(unrouted: Int, pending: Int) {
        self.unrouted.store(unrouted, ordering: .relaxed)
        self.pending.store(pending, ordering: .relaxed)
    }
}
