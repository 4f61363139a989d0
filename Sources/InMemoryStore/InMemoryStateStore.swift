public import BridgeCore
public import Foundation
import Synchronization

/// The state store kept in memory: the same semantics as `SQLiteStateStore`, no I/O, nothing
/// survives the process. For tests of the parts above the store (dispatcher, workers,
/// subscription manager) and for the store contract suite, which runs against it and every
/// durable store alike.
///
/// Events are kept in their canonical JSON form and rebuilt on every read, and dates as seconds
/// since 1970, as the SQLite store keeps them, so a value read back here equals the one the
/// SQLite store would return. Sequence numbers and delivery ids are never reused.
///
/// Replicas, leases and claims follow the PostgreSQL store (several replicas may share one
/// in-memory store), so the dispatcher and workers of several replicas can be tested without a
/// server. Every date comes from the caller.
public final class InMemoryStateStore: StateStore, SubscriptionStore {
    private let state = Mutex(State())

    /// An empty store.
    public init() {}

    // MARK: Journal

    public func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        let rows = entries.map { entry in
            StoredEvent(
                sequence: 0,
                id: entry.event.id,
                receivedAt: entry.event.receivedAt.timeIntervalSince1970,
                subscription: entry.event.subscription.name,
                body: entry.event.encoded(),
                attachment: entry.attachment?.serializedString,
                replica: entry.replica
            )
        }
        let window = DeliveryEngine.deduplicationWindow.seconds
        return try state.withLock { state in
            // Decide every outcome before changing anything: a call lands whole or not at all.
            var seen: [String: Double] = [:]
            var ids: Set<String> = []
            var outcomes: [JournalOutcome] = []
            outcomes.reserveCapacity(rows.count)
            for (row, entry) in zip(rows, entries) {
                if let key = entry.deduplicationKey {
                    // Within the window of the last journaled one, a key is a duplicate; the
                    // duplicate does not extend the window.
                    if let last = seen[key] ?? state.deduplication[key], !(last < row.receivedAt - window) {
                        outcomes.append(.duplicate)
                        continue
                    }
                    seen[key] = row.receivedAt
                }
                guard !state.eventIDs.contains(row.id), ids.insert(row.id).inserted else {
                    throw InMemoryStoreError.duplicateEventID(row.id)
                }
                outcomes.append(.journaled)
            }
            var touched: Set<String> = []
            for (row, outcome) in zip(rows, outcomes) where outcome == .journaled {
                var row = row
                row.sequence = state.nextSequence
                state.nextSequence += 1
                state.events.append(row)
                state.eventIDs.insert(row.id)
                touched.insert(row.subscription)
            }
            state.deduplication.merge(seen) { _, new in new }
            // As the SQLite store does: the subscriptions that got an event are stamped with the
            // batch's last arrival.
            if let last = rows.last?.receivedAt {
                for name in touched where state.subscriptions[name] != nil {
                    state.subscriptions[name]?.lastNotificationAt = Date(timeIntervalSince1970: last)
                }
            }
            return outcomes
        }
    }

    // MARK: Routing

    public func unroutedEvents(limit: Int) async throws -> [PendingEvent] {
        try await unroutedEvents(after: 0, limit: limit)
    }

    public func unroutedEvents(after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        let rows = state.withLock { state in
            var unrouted: [StoredEvent] = []
            for event in state.events[state.firstIndex(after: max(sequence, state.routedThrough))...] where !state.routedAhead.contains(event.sequence) {
                if limit >= 0 && unrouted.count >= limit { break }
                unrouted.append(event)
            }
            return unrouted
        }
        return try rows.map { row in
            PendingEvent(sequence: row.sequence, event: try Self.event(row.body), attachment: try row.attachment.map(Self.attachment))
        }
    }

    public func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        let rows = state.withLock { state in
            var unrouted: [StoredEvent] = []
            for event in state.events[state.firstIndex(after: max(sequence, state.routedThrough))...]
            where !state.routedAhead.contains(event.sequence) && (event.replica == nil || event.replica == replica) {
                if limit >= 0 && unrouted.count >= limit { break }
                unrouted.append(event)
            }
            return unrouted
        }
        return try rows.map { row in
            PendingEvent(sequence: row.sequence, event: try Self.event(row.body), attachment: try row.attachment.map(Self.attachment))
        }
    }

    public func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int {
        let now = now.timeIntervalSince1970
        return state.withLock { state in
            var adopted = 0
            for index in state.events.indices[state.firstIndex(after: state.routedThrough)...] {
                let event = state.events[index]
                guard let owner = event.replica, owner != replica, !state.routedAhead.contains(event.sequence),
                    !state.leases.isLive(owner, at: now)
                else { continue }
                state.events[index].replica = replica
                adopted += 1
            }
            return adopted
        }
    }

    /// As the SQLite store: `events` may be any unrouted events, in any order; the routed-through
    /// mark moves past every routed event up to the first one still unrouted, and those routed
    /// ahead of it are remembered apart. Events routed already are left out.
    @discardableResult
    public func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> {
        guard !events.isEmpty else { return [] }
        let rows = events.map { routed in
            (
                sequence: routed.sequence,
                body: routed.changed ? routed.event.encoded() : nil,
                createdAt: routed.event.receivedAt.timeIntervalSince1970,
                sinks: routed.sinks
            )
        }
        let now = now.timeIntervalSince1970
        return try state.withLock { state in
            // A delivery needs its event (the SQLite store's foreign key): check before changing anything.
            for row in rows where !row.sinks.isEmpty && state.index(of: row.sequence) == nil {
                throw InMemoryStoreError.unknownEvent(row.sequence)
            }
            var routed: Set<Int64> = []
            for row in rows where state.isUnrouted(row.sequence) && routed.insert(row.sequence).inserted {
                if let body = row.body, let index = state.index(of: row.sequence) {
                    state.events[index].body = body
                }
                for sink in row.sinks {
                    let id = state.nextDeliveryID
                    state.nextDeliveryID += 1
                    state.deliveries[id] = StoredDelivery(
                        id: id, eventSequence: row.sequence, sink: sink, attempts: 0, createdAt: row.createdAt, nextAttemptAt: now
                    )
                }
            }
            state.advanceMark(past: routed)
            return routed
        }
    }

    // MARK: Replicas

    public func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws {
        _ = state.withLock { $0.leases.renew(replica, now: now.timeIntervalSince1970, lease: lease) }
    }

    @discardableResult
    public func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool {
        state.withLock { $0.leases.renew(replica, now: now.timeIntervalSince1970, lease: lease) }
    }

    public func releaseReplica(_ replica: ReplicaID) async throws {
        state.withLock { $0.leases.release(replica) }
    }

    // MARK: Deliveries

    public func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] {
        let cutoff = now.timeIntervalSince1970
        let claimed = state.withLock { state -> [(StoredDelivery, [UInt8])] in
            guard state.leases.isLive(replica, at: cutoff) else { return [] }
            var claimed: [(StoredDelivery, [UInt8])] = []
            for delivery in state.deliveries.values.filter({ $0.sink == sink && !$0.dead && $0.nextAttemptAt <= cutoff })
                .sorted(by: StoredDelivery.dueOrder)
            {
                guard claimed.count < limit else { break }
                guard let index = state.index(of: delivery.eventSequence), state.leases.claim(delivery.id, for: replica, now: cutoff) else { continue }
                claimed.append((delivery, state.events[index].body))
            }
            return claimed
        }
        return try claimed.map { delivery, body in
            Delivery(id: delivery.id, sink: sink, event: try Self.event(body), attempts: delivery.attempts, createdAt: Date(timeIntervalSince1970: delivery.createdAt))
        }
    }

    public func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? {
        let cutoff = now.timeIntervalSince1970
        return state.withLock { state in
            state.deliveries.values
                .filter { $0.sink == sink && !$0.dead }
                .map { max($0.nextAttemptAt, state.leases.claimableAt($0.id, by: replica, now: cutoff) ?? -.infinity) }
                .filter(\.isFinite)
                .min()
                .map(Date.init(timeIntervalSince1970:))
        }
    }

    public func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] {
        let cutoff = now.timeIntervalSince1970
        let due = state.withLock { state in
            state.deliveries.values
                .filter { $0.sink == sink && !$0.dead && $0.nextAttemptAt <= cutoff && !excluding.contains($0.id) }
                .sorted(by: StoredDelivery.dueOrder)
                .prefix(max(0, limit))
                .compactMap { delivery in state.index(of: delivery.eventSequence).map { (delivery, state.events[$0].body) } }
        }
        return try due.map { delivery, body in
            Delivery(
                id: delivery.id,
                sink: sink,
                event: try Self.event(body),
                attempts: delivery.attempts,
                createdAt: Date(timeIntervalSince1970: delivery.createdAt)
            )
        }
    }

    public func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? {
        state.withLock { state in
            state.deliveries.values
                .filter { $0.sink == sink && !$0.dead && !excluding.contains($0.id) }
                .min(by: StoredDelivery.dueOrder)
                .map { Date(timeIntervalSince1970: $0.nextAttemptAt) }
        }
    }

    public func recordSuccesses(deliveryIDs: [Int64]) async throws {
        state.withLock { state in
            for id in deliveryIDs {
                state.deliveries[id] = nil
                state.leases.unclaim(id)
            }
        }
    }

    public func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws {
        state.withLock { state in
            state.deliveries[deliveryID]?.attempts = attempts
            state.deliveries[deliveryID]?.nextAttemptAt = nextAttemptAt.timeIntervalSince1970
            state.deliveries[deliveryID]?.lastError = error
            state.leases.unclaim(deliveryID)
        }
    }

    public func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws {
        state.withLock { state in
            guard var delivery = state.deliveries[deliveryID] else { return }
            delivery.dead = true
            delivery.attempts = attempts
            delivery.lastError = error
            delivery.deadAt = date.timeIntervalSince1970
            state.deliveries[deliveryID] = delivery
            state.leases.unclaim(deliveryID)
        }
    }

    public func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] {
        state.withLock { state in
            var retired: [String: Int] = [:]
            for (id, delivery) in state.deliveries where !delivery.dead && !sinks.contains(delivery.sink) {
                state.deliveries[id]?.dead = true
                state.deliveries[id]?.lastError = error
                state.deliveries[id]?.deadAt = date.timeIntervalSince1970
                state.leases.unclaim(id)
                retired[delivery.sink, default: 0] += 1
            }
            return retired
        }
    }

    // MARK: Inspection and replay

    public func queueDepths() async throws -> [String: QueueDepth] {
        state.withLock { state in
            var depths: [String: QueueDepth] = [:]
            for delivery in state.deliveries.values {
                depths[delivery.sink, default: QueueDepth(pending: 0, dead: 0)].pending += delivery.dead ? 0 : 1
                depths[delivery.sink, default: QueueDepth(pending: 0, dead: 0)].dead += delivery.dead ? 1 : 0
            }
            return depths
        }
    }

    public func unroutedCount() async throws -> Int {
        state.withLock { state in state.events.count - state.firstIndex(after: state.routedThrough) - state.routedAhead.count }
    }

    public func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage {
        state.withLock { state in
            let matching = state.deadLetters(selection)
            return DeadLetterPage(letters: Array(matching.prefix(max(0, limit))), total: matching.count)
        }
    }

    /// Puts the selection's dead letters back in the queue, due at `now` and aged from then
    /// (attempts and the last error are kept); returns how many. Unknown ids change nothing.
    public func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int {
        let now = now.timeIntervalSince1970
        return try state.withLock { state in
            let matching = try state.knownDeadLetters(selection)
            for letter in matching {
                state.deliveries[letter.id]?.dead = false
                state.deliveries[letter.id]?.createdAt = now
                state.deliveries[letter.id]?.nextAttemptAt = now
                state.deliveries[letter.id]?.deadAt = nil
            }
            return matching.count
        }
    }

    public func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try state.withLock { state in
            let matching = try state.knownDeadLetters(selection)
            for letter in matching {
                state.deliveries[letter.id] = nil
                state.leases.unclaim(letter.id)
            }
            return matching.count
        }
    }

    /// As the SQLite store prunes: routed events with no delivery left that arrived before `date`,
    /// walking arrival order up to the first event received on or after `date`.
    public func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {
        let delivered = date.timeIntervalSince1970
        let deduplication = deduplicationBefore.timeIntervalSince1970
        state.withLock { state in
            let bound = state.events.first { $0.receivedAt >= delivered }?.sequence ?? .max
            let referenced = Set(state.deliveries.values.map(\.eventSequence))
            state.events.removeAll { event in
                let drop =
                    event.sequence <= state.routedThrough && event.sequence < bound && event.receivedAt < delivered
                    && !referenced.contains(event.sequence)
                if drop { state.eventIDs.remove(event.id) }
                return drop
            }
            state.deduplication = state.deduplication.filter { $0.value >= deduplication }
        }
    }

    // MARK: Subscriptions and settings

    public func subscriptionRecords() async throws -> [SubscriptionRecord] {
        // SQLite's `ORDER BY name`: byte order of the UTF-8 text.
        state.withLock { state in state.subscriptions.values.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) } }
    }

    public func saveSubscription(_ record: SubscriptionRecord) async throws {
        var record = record
        record.expiration = record.expiration.map(Self.stored)
        record.renewedAt = record.renewedAt.map(Self.stored)
        record.lastNotificationAt = record.lastNotificationAt.map(Self.stored)
        state.withLock { state in
            record.lastNotificationAt = record.lastNotificationAt ?? state.subscriptions[record.name]?.lastNotificationAt
            state.subscriptions[record.name] = record
        }
    }

    public func deleteSubscription(name: String) async throws {
        state.withLock { _ = $0.subscriptions.removeValue(forKey: name) }
    }

    public func setting(_ key: String) async throws -> String? {
        state.withLock { $0.settings[key] }
    }

    public func setSetting(_ key: String, to value: String?) async throws {
        state.withLock { $0.settings[key] = value }
    }

    // MARK: What the SQLite store offers beside the protocols

    /// The most recent events, newest first (for the status page).
    public func recentEvents(limit: Int) async throws -> [BridgeEvent] {
        let bodies = state.withLock { state in
            let newestFirst = state.events.reversed()
            return (limit < 0 ? newestFirst.map(\.body) : newestFirst.prefix(limit).map(\.body))
        }
        return try bodies.map(Self.event)
    }

    /// How many events the store holds (routed or not).
    public func eventCount() async throws -> Int {
        state.withLock { $0.events.count }
    }

    // MARK: Helpers

    private static func event(_ body: [UInt8]) throws -> BridgeEvent {
        do {
            return try BridgeEvent(encoded: body)
        } catch {
            throw InMemoryStoreError.corruptRecord("event: \(error)")
        }
    }

    private static func attachment(_ text: String) throws -> JSONValue {
        do {
            return try JSONParser.parse(text, maxDepth: 256)
        } catch {
            throw InMemoryStoreError.corruptRecord("attachment: \(error)")
        }
    }

    /// A date as it comes back from a column of seconds since 1970.
    private static func stored(_ date: Date) -> Date { Date(timeIntervalSince1970: date.timeIntervalSince1970) }
}

// MARK: - Rows

private struct StoredEvent: Sendable {
    var sequence: Int64
    var id: String
    /// Seconds since 1970.
    var receivedAt: Double
    /// The subscription's name when it was journaled (dead letters show this, not the body's).
    var subscription: String
    var body: [UInt8]
    var attachment: String?
    /// The replica whose dispatcher routes it (nil: any).
    var replica: ReplicaID?
}

private struct StoredDelivery: Sendable {
    var id: Int64
    var eventSequence: Int64
    var sink: String
    var dead = false
    var attempts: Int
    var createdAt: Double
    var nextAttemptAt: Double
    var lastError: String?
    var deadAt: Double?

    /// Due first, then created first: the order the SQLite store's index gives.
    static func dueOrder(_ a: StoredDelivery, _ b: StoredDelivery) -> Bool {
        (a.nextAttemptAt, a.id) < (b.nextAttemptAt, b.id)
    }
}

private struct State: Sendable {
    /// In sequence order (appended in order; pruning only removes).
    var events: [StoredEvent] = []
    var eventIDs: Set<String> = []
    var nextSequence: Int64 = 1
    /// Every event up to this sequence number is routed.
    var routedThrough: Int64 = 0
    /// Events above `routedThrough` that are routed already (out of order).
    var routedAhead: Set<Int64> = []
    var deliveries: [Int64: StoredDelivery] = [:]
    var nextDeliveryID: Int64 = 1
    /// Deduplication key to when it was last journaled (seconds since 1970).
    var deduplication: [String: Double] = [:]
    var subscriptions: [String: SubscriptionRecord] = [:]
    var settings: [String: String] = [:]
    var leases = LeaseTable()

    /// Whether the event with this sequence number is held and not routed yet.
    func isUnrouted(_ sequence: Int64) -> Bool {
        sequence > routedThrough && !routedAhead.contains(sequence) && index(of: sequence) != nil
    }

    /// The index of the first event whose sequence number is above `sequence`.
    func firstIndex(after sequence: Int64) -> Int {
        var low = 0
        var high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].sequence <= sequence { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Moves `routedThrough` over `committed` and the events routed ahead, up to the first
    /// unrouted event; remembers the committed events beyond it in `routedAhead`.
    mutating func advanceMark(past committed: Set<Int64>) {
        var ahead = committed.filter { $0 > routedThrough && index(of: $0) != nil }
        var position = firstIndex(after: routedThrough)
        while position < events.count {
            let sequence = events[position].sequence
            guard ahead.remove(sequence) != nil || routedAhead.remove(sequence) != nil else { break }
            routedThrough = sequence
            position += 1
        }
        routedAhead.formUnion(ahead)
    }

    /// Where the event with this sequence number is, if the store holds it.
    func index(of sequence: Int64) -> Int? {
        let index = firstIndex(after: sequence - 1)
        return index < events.count && events[index].sequence == sequence ? index : nil
    }

    /// The dead letters of `selection`, oldest first.
    func deadLetters(_ selection: DeadLetterSelection) -> [DeadLetter] {
        deliveries.values.filter(\.dead).sorted { $0.id < $1.id }.compactMap { delivery in
            guard let index = index(of: delivery.eventSequence) else { return nil }
            return DeadLetter(
                id: delivery.id,
                sink: delivery.sink,
                eventID: events[index].id,
                subscription: events[index].subscription,
                attempts: delivery.attempts,
                lastError: delivery.lastError ?? "",
                createdAt: Date(timeIntervalSince1970: delivery.createdAt),
                deadAt: Date(timeIntervalSince1970: delivery.deadAt ?? 0)
            )
        }.filter(selection.contains)
    }

    /// The dead letters of `selection`; throws ``UnknownDeadLetters`` when any of its ids is not one of them.
    func knownDeadLetters(_ selection: DeadLetterSelection) throws -> [DeadLetter] {
        let matching = deadLetters(selection)
        if let ids = selection.ids {
            let found = Set(matching.map(\.id))
            var unknown: [Int64] = []
            for id in ids where !found.contains(id) && !unknown.contains(id) { unknown.append(id) }
            if !unknown.isEmpty { throw UnknownDeadLetters(ids: unknown) }
        }
        return matching
    }
}
