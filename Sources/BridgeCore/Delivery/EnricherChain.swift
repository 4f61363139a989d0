/// Runs enrichers one after another, each seeing the event as the previous one left it; the first
/// that drops the event ends the chain. Order matters: rich-notification decryption goes before
/// `fetch:`, which leaves an event alone once it has `data`.
public struct EnricherChain: EventEnricher {
    let enrichers: [any EventEnricher]

    public init(_ enrichers: [any EventEnricher]) {
        self.enrichers = enrichers
    }

    public func enrich(_ pending: PendingEvent) async -> BridgeEvent? {
        var current = pending
        for enricher in enrichers {
            guard let event = await enricher.enrich(current) else { return nil }
            current.event = event
        }
        return current.event
    }
}
