public import Foundation

/// An accepted notification on its way into the journal.
public struct JournalEntry: Sendable {
    public var event: BridgeEvent
    /// Graph's duplicates share this key (subscription, changeType, resource, etag); nil: never a duplicate.
    public var deduplicationKey: String?
    /// What the delivery side needs besides the event (rich notifications: the encrypted content).
    public var attachment: JSONValue?

    public init(event: BridgeEvent, deduplicationKey: String?, attachment: JSONValue? = nil) {
        self.event = event
        self.deduplicationKey = deduplicationKey
        self.attachment = attachment
    }
}

public enum JournalOutcome: Sendable, Hashable {
    case journaled
    /// Graph sent the same change within the deduplication window: kept once.
    case duplicate
}

/// A journaled event that has not been routed yet.
public struct PendingEvent: Sendable {
    public var sequence: Int64
    public var event: BridgeEvent
    public var attachment: JSONValue?

    public init(sequence: Int64, event: BridgeEvent, attachment: JSONValue?) {
        self.sequence = sequence
        self.event = event
        self.attachment = attachment
    }
}

/// The routing result for one event: its final form (with `data`) and the sinks it goes to.
public struct RoutedEvent: Sendable {
    public var sequence: Int64
    public var event: BridgeEvent
    /// Whether enrichment changed the event since it was journaled (then its stored form is replaced).
    public var changed: Bool
    public var sinks: [String]
    /// The enricher refused the event (a rich notification that failed its checks): no deliveries.
    public var dropped: Bool

    public init(sequence: Int64, event: BridgeEvent, changed: Bool, sinks: [String], dropped: Bool = false) {
        self.sequence = sequence
        self.event = event
        self.changed = changed
        self.sinks = sinks
        self.dropped = dropped
    }
}

/// One (event, sink) pair waiting to be delivered.
public struct Delivery: Sendable {
    public var id: Int64
    public var sink: String
    public var event: BridgeEvent
    /// Tries made so far.
    public var attempts: Int
    public var createdAt: Date

    public init(id: Int64, sink: String, event: BridgeEvent, attempts: Int, createdAt: Date) {
        self.id = id
        self.sink = sink
        self.event = event
        self.attempts = attempts
        self.createdAt = createdAt
    }
}

/// A delivery that ran out of tries or failed permanently, kept for replay.
public struct DeadLetter: Sendable {
    public var id: Int64
    public var sink: String
    public var eventID: String
    public var subscription: String
    public var attempts: Int
    public var lastError: String
    public var createdAt: Date
    public var deadAt: Date

    public init(id: Int64, sink: String, eventID: String, subscription: String, attempts: Int, lastError: String, createdAt: Date, deadAt: Date) {
        self.id = id
        self.sink = sink
        self.eventID = eventID
        self.subscription = subscription
        self.attempts = attempts
        self.lastError = lastError
        self.createdAt = createdAt
        self.deadAt = deadAt
    }
}

/// How much work waits for one sink.
public struct QueueDepth: Sendable, Hashable {
    public var pending: Int
    public var dead: Int

    public init(pending: Int, dead: Int) {
        self.pending = pending
        self.dead = dead
    }
}

/// The one protocol the bridge's durable state sits behind (SQLite now; a shared store later).
///
/// Every method that changes state returns only once the change is durable.
public protocol StateStore: Sendable {
    /// Writes accepted notifications durably, deduplicating by key; one outcome per entry, in order.
    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome]

    /// Journaled events not yet routed, oldest first.
    func unroutedEvents(limit: Int) async throws -> [PendingEvent]

    /// Records routing results: stores each event's final form, creates its deliveries, marks it routed.
    func commitRouting(_ events: [RoutedEvent]) async throws

    /// Pending deliveries for `sink` due at `now`, oldest first, leaving out `excluding` (in flight).
    func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery]

    /// When the next pending delivery of `sink` outside `excluding` is due, if any.
    func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date?

    func recordSuccess(deliveryID: Int64) async throws
    func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws
    func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws

    func queueDepths() async throws -> [String: QueueDepth]
    /// How many journaled events wait for routing.
    func unroutedCount() async throws -> Int
    func deadLetters(limit: Int) async throws -> [DeadLetter]
    /// Puts dead letters back in the queue, due now; returns how many. nil: all of them.
    func retryDeadLetters(ids: [Int64]?) async throws -> Int
    func purgeDeadLetters() async throws -> Int

    /// Drops routed events with nothing left to deliver that arrived before `date`, and expired deduplication keys.
    func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws
}
