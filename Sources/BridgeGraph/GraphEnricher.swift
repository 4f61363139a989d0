public import BridgeCore
public import GraphClient
public import Logging
public import Metrics

/// `fetch:`: GETs the changed item with `$select` on the delivery side (never before the 202) and
/// puts it in the event's `data`. Transient failures are retried a few times; when the item is
/// gone or the fetch keeps failing, the event is routed without `data` and the log says why.
///
/// Only paths inside the subscription's own resource are read (``FetchScope``): a notification
/// naming anything else is routed without `data`, logged and counted.
///
/// Reads go through ``BatchedReads``: at most `perMailbox` reads of one mailbox in flight at once
/// (Outlook allows 4, counting each request inside a `$batch`), reads that queue up sent together
/// as JSON `$batch` requests of up to 20, and every 429/503 (of a whole call or of one request in
/// a batch) read again after its `Retry-After`, up to `attempts` times, without holding the
/// mailbox's slot while waiting. Stopping the bridge ends every wait at once. The waits are on
/// `clock` (the system's in the bridge; tests move their own).
public struct GraphEnricher: EventEnricher {
    /// What to fetch for one subscription.
    public struct Target: Sendable {
        /// The subscription's resource, as declared: reads stay inside it.
        public var resource: String
        /// The fields to `$select`.
        public var select: [String]

        public init(resource: String, select: [String]) {
            self.resource = resource
            self.select = select
        }
    }

    let graph: GraphClient
    /// Subscription name → what to fetch.
    let targets: [String: Target]
    let logger: Logger
    let attempts: Int
    let reads: BatchedReads
    let metrics: any MetricsFactory
    /// What the waits between reads of one item sleep on.
    let clock: any Clock<Duration>

    /// - Parameters:
    ///   - attempts: reads of one item before it is routed without `data` (throttling and server errors).
    ///   - perMailbox: reads of one mailbox in flight at once (Outlook allows 4).
    ///   - concurrentCalls: HTTP calls to Graph in flight at once (each a GET or a `$batch` of up to 20).
    ///   - metrics: where `graph_bridge_enrichment_total` goes; the process's bootstrapped factory unless a test gives its own.
    ///   - clock: what the wait before reading an item again (its `Retry-After`, or the backoff) sleeps on.
    public init(
        graph: GraphClient, targets: [String: Target], logger: Logger, attempts: Int = 6, perMailbox: Int = 4, concurrentCalls: Int = 4,
        metrics: any MetricsFactory = MetricsSystem.factory, clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.metrics = metrics
        self.clock = clock
        self.graph = graph
        self.targets = targets
        self.logger = logger
        self.attempts = attempts
        self.reads = BatchedReads(graph: graph, perMailbox: perMailbox, concurrentCalls: concurrentCalls)
    }

    public func enrich(_ pending: PendingEvent) async -> BridgeEvent? {
        var event = pending.event
        guard event.data == nil, !event.isLifecycle, event.changeType != "deleted",
            let target = targets[event.subscription.name], let resource = event.resource
        else { return event }
        var logger = self.logger
        logger[metadataKey: "bridge.event"] = "\(event.id)"
        logger[metadataKey: "bridge.subscription"] = "\(event.subscription.name)"
        let path: String
        switch FetchScope.path(for: resource, subscription: target.resource) {
        case .success(let inside):
            path = inside
        case .failure(let refusal):
            count("refused")
            logger.warning("not fetching: the notification's resource is outside the subscription's; routing the event without data", metadata: [
                "bridge.resource": "\(resource)", "bridge.reason": "\(refusal.rawValue)",
            ])
            return event
        }
        let itemPath = GraphClient.itemPath(resource: path, select: target.select)
        var lastError: GraphError?
        for attempt in 1...max(1, attempts) {
            let outcome: BatchedReads.Outcome
            do {
                outcome = try await reads.read(itemPath)
            } catch {
                return event  // the bridge is stopping: the event stays journaled, unrouted
            }
            switch outcome {
            case .item(let item):
                event.data = item
                count("fetched")
                return event
            case .failed(let error) where error.kind == .notFound:
                count("gone")
                logger.info("the changed item is gone; routing the event without data", metadata: ["bridge.request_id": "\(error.requestID ?? "-")"])
                return event
            case .failed(let error):
                lastError = error
            case .retry(let after, let error):
                lastError = error
                guard attempt < attempts else { break }
                do {
                    try await clock.sleep(for: after ?? .milliseconds(500 * (1 << min(attempt, 6))))
                } catch {
                    return event  // the bridge is stopping: the event stays journaled, unrouted
                }
                continue
            }
            break
        }
        count("failed")
        logger.warning(
            "fetching the changed item failed; routing the event without data",
            metadata: ["error": "\(lastError.map { "\($0)" } ?? "-")", "bridge.request_id": "\(lastError?.requestID ?? "-")"])
        return event
    }

    /// `graph_bridge_enrichment_total{outcome}`: fetched, gone, failed, refused.
    func count(_ outcome: String) {
        Counter(label: "graph_bridge_enrichment_total", dimensions: [("outcome", outcome)], factory: metrics).increment()
    }
}

/// Keeps the delegated refresh token in the state store's settings.
public struct StoredRefreshToken: RefreshTokenStorage {
    public static let key = "graph.refreshToken"
    let store: any SubscriptionStore

    public init(store: any SubscriptionStore) { self.store = store }

    public func loadRefreshToken() async throws -> String? { try await store.setting(Self.key) }
    public func saveRefreshToken(_ token: String) async throws { try await store.setSetting(Self.key, to: token) }
}
