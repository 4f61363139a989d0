import Synchronization

/// How many notification requests the intake is handling right now, shared with the dispatcher.
///
/// Graph judges an endpoint by how fast it answers, and after an outage it replays hours of
/// notifications at once. While the listener is saturated the dispatcher holds routing back for a
/// short, bounded time before each batch (see `Dispatcher`), so the CPU goes to acknowledging the
/// burst first: what is acknowledged is already durable, and it is routed and delivered as soon
/// as the burst eases.
public final class ListenerLoad: Sendable {
    private let inFlight = Atomic<Int>(0)
    /// More requests than this in flight at once means the listener is saturated.
    public let saturation: Int

    public init(saturation: Int = 8) {
        self.saturation = saturation
    }

    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    public var isSaturated: Bool { requestsInFlight > saturation }

    func enter() { inFlight.add(1, ordering: .relaxed) }

    func leave() { inFlight.subtract(1, ordering: .relaxed) }
}
