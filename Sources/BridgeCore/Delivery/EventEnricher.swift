/// Completes an event before it is routed: the fetched item (`fetch:`) or decrypted rich content.
///
/// Runs on the delivery side, never on the 202 path. An enricher that merely cannot complete the
/// event (the item is gone, the fetch failed) logs why and returns it without `data`: it is still
/// routed. Only an event that proves not to be genuine (a rich notification whose validation
/// tokens or encrypted content fail the checks) is dropped, by returning nil; the enricher logs
/// and counts why.
public protocol EventEnricher: Sendable {
    /// The completed event, or nil to drop it unrouted.
    func enrich(_ pending: PendingEvent) async -> BridgeEvent?
}

/// Leaves events as they came in.
public struct NoEnrichment: EventEnricher {
    public init() {}
    public func enrich(_ pending: PendingEvent) async -> BridgeEvent? { pending.event }
}
