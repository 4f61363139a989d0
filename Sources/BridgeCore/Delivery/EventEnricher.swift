/// Completes an event before it is routed: the fetched item (`fetch:`) or decrypted rich content.
///
/// Runs on the delivery side, never on the 202 path. It must not fail the event: when the item is
/// gone or the fetch fails, it logs why and returns the event without `data`.
public protocol EventEnricher: Sendable {
    func enrich(_ pending: PendingEvent) async -> BridgeEvent
}

/// Leaves events as they came in.
public struct NoEnrichment: EventEnricher {
    public init() {}
    public func enrich(_ pending: PendingEvent) async -> BridgeEvent { pending.event }
}
