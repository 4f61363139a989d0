import Synchronization

/// What the listener needs to know about one subscription to accept its notifications.
public struct SubscriptionEntry: Sendable, Hashable {
    public var name: String
    /// Graph's subscription id.
    public var id: String
    public var resource: String?
    /// The secret Graph echoes in every item; compared in constant time.
    public var clientState: String

    public init(name: String, id: String, resource: String?, clientState: String) {
        self.name = name
        self.id = id
        self.resource = resource
        self.clientState = clientState
    }
}

/// The subscriptions the listener accepts notifications for, by Graph subscription id.
///
/// Receive-only subscriptions are fixed at start; the subscription manager replaces its own
/// entries as it creates and recreates them. Reads are a lock and a dictionary lookup.
public final class SubscriptionDirectory: Sendable {
    private let entries: Mutex<[String: SubscriptionEntry]>

    public init(_ entries: [SubscriptionEntry] = []) {
        self.entries = Mutex(Dictionary(entries.map { ($0.id.lowercased(), $0) }, uniquingKeysWith: { _, last in last }))
    }

    public func entry(forSubscriptionID id: String) -> SubscriptionEntry? {
        let key = id.lowercased()
        return entries.withLock { $0[key] }
    }

    /// Adds or replaces the entry for `entry.id`.
    public func upsert(_ entry: SubscriptionEntry) {
        entries.withLock { $0[entry.id.lowercased()] = entry }
    }

    public func remove(subscriptionID id: String) {
        _ = entries.withLock { $0.removeValue(forKey: id.lowercased()) }
    }

    public var all: [SubscriptionEntry] {
        entries.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }
}
