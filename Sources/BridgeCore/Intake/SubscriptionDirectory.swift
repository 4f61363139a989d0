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
///
/// A subscription being created is *expected*: its clientState is known, its id not yet. Graph
/// may deliver the first notification before the bridge has read Graph's answer to the create
/// (or when that answer never arrived: a timeout after Graph made it), so an item with an unknown
/// id whose clientState is an expected one's is accepted for that subscription.
public final class SubscriptionDirectory: Sendable {
    private struct State {
        var byID: [String: SubscriptionEntry]
        /// By name; `id` is empty.
        var expected: [String: SubscriptionEntry] = [:]
    }

    private let state: Mutex<State>

    public init(_ entries: [SubscriptionEntry] = []) {
        state = Mutex(State(byID: Dictionary(entries.map { ($0.id.lowercased(), $0) }, uniquingKeysWith: { _, last in last })))
    }

    public func entry(forSubscriptionID id: String) -> SubscriptionEntry? {
        let key = id.lowercased()
        return state.withLock { $0.byID[key] }
    }

    /// The entry for an item: by its subscription id, else an expected subscription whose
    /// clientState it carries (compared in constant time), with the item's id filled in.
    public func entry(forSubscriptionID id: String, clientState: String?) -> SubscriptionEntry? {
        let key = id.lowercased()
        return state.withLock { state in
            if let entry = state.byID[key] { return entry }
            guard let clientState, !state.expected.isEmpty else { return nil }
            let presented = Array(clientState.utf8)
            guard var match = state.expected.values.first(where: { constantTimeEquals(presented, Array($0.clientState.utf8)) }) else { return nil }
            match.id = id
            return match
        }
    }

    /// A subscription about to be created with `clientState` (replaces an earlier expectation of the same name).
    public func expect(name: String, resource: String?, clientState: String) {
        state.withLock { $0.expected[name] = SubscriptionEntry(name: name, id: "", resource: resource, clientState: clientState) }
    }

    /// Adds or replaces the entry for `entry.id`; the subscription of that name is no longer expected.
    public func upsert(_ entry: SubscriptionEntry) {
        state.withLock { state in
            state.byID[entry.id.lowercased()] = entry
            state.expected.removeValue(forKey: entry.name)
        }
    }

    public func remove(subscriptionID id: String) {
        _ = state.withLock { $0.byID.removeValue(forKey: id.lowercased()) }
    }

    public var all: [SubscriptionEntry] {
        state.withLock { Array($0.byID.values) }.sorted { $0.name < $1.name }
    }
}

/// Reads the shared subscription records into the directory now (replicas on one store: a
/// subscription another replica just created). The intake asks before it drops a notification for
/// an id it does not know; an implementation bounds how often that reads the store.
public protocol DirectoryRefresher: Sendable {
    func refreshDirectory() async
}
