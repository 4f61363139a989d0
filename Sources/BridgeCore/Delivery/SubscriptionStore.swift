public import Foundation

/// What the bridge remembers about one subscription across restarts.
public struct SubscriptionRecord: Sendable, Hashable {
    /// The `name` in `bridge.yaml`.
    public var name: String
    /// Graph's id; nil while a create is in progress (the clientState is kept first, so a crash
    /// between Graph's answer and this record never leaves an unverifiable subscription).
    public var graphID: String?
    public var resource: String
    /// Comma-separated, as Graph takes them.
    public var changeTypes: String
    public var clientState: String
    public var notificationURL: String
    /// When Graph says it expires; nil for receive-only subscriptions.
    public var expiration: Date?
    /// When it was created or last renewed (the start of the lifetime Graph granted).
    public var renewedAt: Date?
    public var managed: Bool
    public var lastNotificationAt: Date?

    public init(name: String, graphID: String?, resource: String, changeTypes: String, clientState: String, notificationURL: String,
                expiration: Date?, renewedAt: Date?, managed: Bool, lastNotificationAt: Date? = nil) {
        self.name = name
        self.graphID = graphID
        self.resource = resource
        self.changeTypes = changeTypes
        self.clientState = clientState
        self.notificationURL = notificationURL
        self.expiration = expiration
        self.renewedAt = renewedAt
        self.managed = managed
        self.lastNotificationAt = lastNotificationAt
    }
}

/// The subscription records and small settings (the delegated refresh token) in the state store.
public protocol SubscriptionStore: Sendable {
    func subscriptionRecords() async throws -> [SubscriptionRecord]
    /// Inserts or replaces the record named `record.name` (keeping `lastNotificationAt` when the new one has none).
    func saveSubscription(_ record: SubscriptionRecord) async throws
    func deleteSubscription(name: String) async throws
    func setting(_ key: String) async throws -> String?
    func setSetting(_ key: String, to value: String?) async throws
}
