public import BridgeCore
public import GraphClient
public import Logging

/// `fetch:`: GETs the changed item with `$select` on the delivery side (never before the 202) and
/// puts it in the event's `data`. Transient failures are retried a few times; when the item is
/// gone or the fetch keeps failing, the event is routed without `data` and the log says why.
public struct GraphEnricher: EventEnricher {
    let graph: GraphClient
    /// Subscription name → fields to select.
    let fields: [String: [String]]
    let logger: Logger
    let attempts: Int

    public init(graph: GraphClient, fields: [String: [String]], logger: Logger, attempts: Int = 3) {
        self.graph = graph
        self.fields = fields
        self.logger = logger
        self.attempts = attempts
    }

    public func enrich(_ pending: PendingEvent) async -> BridgeEvent? {
        var event = pending.event
        guard event.data == nil, !event.isLifecycle, event.changeType != "deleted",
            let select = fields[event.subscription.name], let resource = event.resource
        else { return event }
        var logger = self.logger
        logger[metadataKey: "bridge.event"] = "\(event.id)"
        logger[metadataKey: "bridge.subscription"] = "\(event.subscription.name)"
        for attempt in 1...max(1, attempts) {
            do {
                let body = try await graph.item(resource: resource, select: select)
                event.data = try JSONParser.parse(body, maxDepth: 128)
                return event
            } catch let error as GraphError where error.kind == .notFound {
                logger.info("the changed item is gone; routing the event without data", metadata: ["bridge.request_id": "\(error.requestID ?? "-")"])
                return event
            } catch let error as GraphError where error.isTransient && attempt < attempts {
                try? await Task.sleep(for: error.retryAfter ?? .milliseconds(500 * (1 << attempt)))
            } catch {
                logger.warning("fetching the changed item failed; routing the event without data", metadata: ["error": "\(error)"])
                return event
            }
        }
        return event
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
