/// What the status page and health checks read from a state store besides ``StateStore``.
public protocol StoreInspection: Sendable {
    /// A cheap read that fails when the store cannot be read.
    func ping() async throws
    /// The most recent events, newest first.
    func recentEvents(limit: Int) async throws -> [BridgeEvent]
    /// How many events the store holds (routed or not).
    func eventCount() async throws -> Int
}
