public import Foundation

/// An accepted notification on its way into the journal.
public struct JournalEntry: Sendable {
    public var event: BridgeEvent
    /// Graph's duplicates share this key (subscription, changeType, resource, etag); nil: never a duplicate.
    public var deduplicationKey: String?
    /// What the delivery side needs besides the event (rich notifications: the encrypted content).
    public var attachment: JSONValue?
    /// The replica that accepted it, whose dispatcher routes it (others adopt it once that replica's
    /// lease lapses); nil: any replica's dispatcher routes it.
    public var replica: ReplicaID?

    public init(event: BridgeEvent, deduplicationKey: String?, attachment: JSONValue? = nil, replica: ReplicaID? = nil) {
        self.event = event
        self.deduplicationKey = deduplicationKey
        self.attachment = attachment
        self.replica = replica
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
public struct Delivery: Sendable, Hashable {
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

/// Which dead letters a command means; every part that is set must hold.
public struct DeadLetterSelection: Sendable, Hashable {
    /// These dead letters (ids as `dead-letters list` shows them); nil: any.
    public var ids: [Int64]?
    /// Those of the sink of this name (as stored: a sink since removed from the configuration keeps its name).
    public var sink: String?
    /// Those that became dead letters at or after this.
    public var deadSince: Date?
    /// Those that became dead letters before this.
    public var deadBefore: Date?

    public init(ids: [Int64]? = nil, sink: String? = nil, deadSince: Date? = nil, deadBefore: Date? = nil) {
        self.ids = ids
        self.sink = sink
        self.deadSince = deadSince
        self.deadBefore = deadBefore
    }

    /// Every dead letter.
    public static let all = DeadLetterSelection()

    /// Whether `letter` is one of these.
    public func contains(_ letter: DeadLetter) -> Bool {
        (ids?.contains(letter.id) ?? true) && (sink.map { $0 == letter.sink } ?? true)
            && (deadSince.map { letter.deadAt >= $0 } ?? true) && (deadBefore.map { letter.deadAt < $0 } ?? true)
    }
}

/// The first dead letters of a selection, oldest first, and how many it holds in all.
public struct DeadLetterPage: Sendable {
    public var letters: [DeadLetter]
    public var total: Int

    public init(letters: [DeadLetter], total: Int) {
        self.letters = letters
        self.total = total
    }

    /// How many matched beyond the page.
    public var remaining: Int { max(0, total - letters.count) }
}

/// Some ids given to retry or purge are not dead letters; nothing was changed.
public struct UnknownDeadLetters: Error, Sendable, Hashable, CustomStringConvertible {
    public var ids: [Int64]

    public init(ids: [Int64]) { self.ids = ids }

    public var description: String {
        ids.count == 1
            ? "no dead letter has id \(ids[0]); nothing was changed (see `graph-bridge dead-letters list`)"
            : "no dead letters have ids \(ids.map(String.init).joined(separator: ", ")); nothing was changed (see `graph-bridge dead-letters list`)"
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

/// The one protocol the bridge's durable state sits behind: SQLite (one process), PostgreSQL
/// (several replicas sharing it) and memory (tests).
///
/// Every method that changes state returns only once the change is durable. Where time matters
/// (due dates, leases, retried dead letters) the caller passes `now`: the stores never read a
/// clock of their own for a decision, so tests move time by passing a later date.
///
/// ## Replicas, leases and claims
///
/// Each bridge process is a *replica* with a random ``ReplicaID``. Its liveness is a lease: it is
/// alive until the date of its last ``registerReplica(_:now:lease:)`` or
/// ``renewLease(_:now:lease:)`` plus the lease. A pending delivery is handed to one replica at a
/// time by ``claimDeliveries(sink:replica:now:limit:)``; the claim holds while its replica's lease
/// does (renewing the lease extends every claim at once), ends with the delivery's outcome
/// (``recordSuccesses(deliveryIDs:)``, ``recordRetry(deliveryID:attempts:nextAttemptAt:error:)``,
/// ``recordDeadLetter(deliveryID:attempts:error:at:)``) or with ``releaseReplica(_:)``, and is
/// free for any replica once the lease lapsed. An event journaled with a replica is routed by
/// that replica's dispatcher; ``adoptUnroutedEvents(replica:now:)`` hands the unrouted events of
/// lapsed replicas to a live one, and ``commitRouting(_:now:)`` routes an event at most once
/// however many replicas race for it. A store that serves one process at a time (SQLite, whose
/// file is locked) ends every other replica's lease when a replica registers.
public protocol StateStore: Sendable {
    /// Writes accepted notifications durably, deduplicating by key; one outcome per entry, in order.
    /// Each event keeps the entry's `replica` (the one whose dispatcher routes it).
    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome]

    /// `journal(_:)` with a completion instead of an `await`, for a caller on an event loop (the
    /// public listener's `POST /notifications`). By default the write runs in a task; a store
    /// whose writes have a thread of their own (SQLite's group committer) calls `completion` from
    /// that thread, so no task stands between the request and its answer.
    func journal(_ entries: [JournalEntry], completion: @escaping @Sendable (Result<[JournalOutcome], any Error>) -> Void)

    /// Journaled events not yet routed, whichever replica accepted them, oldest first (an event
    /// routed ahead of older ones is left out). For inspection and tests; a dispatcher reads
    /// ``unroutedEvents(for:after:limit:)``.
    func unroutedEvents(limit: Int) async throws -> [PendingEvent]

    /// Journaled events not yet routed whose sequence number is above `sequence`, whichever replica
    /// accepted them, oldest first.
    func unroutedEvents(after sequence: Int64, limit: Int) async throws -> [PendingEvent]

    /// The unrouted events `replica` routes, above `sequence`, oldest first: those it journaled or
    /// adopted, and those journaled without a replica. The dispatcher reads on from the last event
    /// it holds; after an adoption it reads again from the start (adopted events are older).
    func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent]

    /// Hands `replica` the unrouted events journaled by replicas whose lease has lapsed at `now`
    /// (or that released theirs); returns how many it took.
    func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int

    /// Records routing results: stores each event's final form, creates its deliveries (due at
    /// `now`), marks it routed. `events` may be any unrouted events in any order (the dispatcher
    /// commits a subscription's events while another's still wait for enrichment): each is routed
    /// exactly when its deliveries exist, and the events not in it stay unrouted, so a crash loses
    /// none. An event already routed (another replica got there first) is left as it is, without
    /// new deliveries. Returns the sequence numbers this call routed.
    @discardableResult
    func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64>

    // MARK: Replicas

    /// Starts `replica`'s lease: alive until `now + lease`. Call before claiming. A store that
    /// serves one process at a time (SQLite) ends every other replica's lease here and frees its
    /// claims: the file lock says that process is gone.
    func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws

    /// Extends `replica`'s lease to `now + lease`, and with it every claim it holds. Returns false
    /// when the lease had lapsed before (other replicas may have taken its claims and events); it
    /// is alive again either way.
    @discardableResult
    func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool

    /// Ends `replica`'s lease and frees its claims (a graceful stop): other replicas, or the next
    /// start, take its deliveries and unrouted events at once.
    func releaseReplica(_ replica: ReplicaID) async throws

    // MARK: Deliveries

    /// Claims for `replica` up to `limit` pending deliveries of `sink` due at `now` that no live
    /// replica holds (never claimed, or claimed by a replica whose lease lapsed at `now`), oldest
    /// due first. Two replicas never hold the same delivery. Claims nothing while `replica`'s own
    /// lease has lapsed at `now`.
    func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery]

    /// When the next pending delivery of `sink` that `replica` could claim is due (at or before
    /// `now`: at once), in the terms of ``claimDeliveries(sink:replica:now:limit:)``; nil: none.
    /// A delivery another live replica holds counts as due when that replica's lease runs out (as
    /// renewed so far), so a worker waiting on it wakes when a dead replica's claims are free
    /// rather than at its longest wait; `replica`'s own claims do not count.
    func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date?

    /// Pending deliveries for `sink` due at `now`, claimed or not, oldest first, leaving out
    /// `excluding`. A read for inspection and tests: workers claim.
    func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery]

    /// When the next pending delivery of `sink` outside `excluding` is due, claimed or not, if any.
    func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date?

    /// These deliveries succeeded: each is deleted (with its claim), in one durable change (all or
    /// none). A sink worker writes the successes that finished while its previous batch was being
    /// written this way: one write and one wake-up for them all.
    func recordSuccesses(deliveryIDs: [Int64]) async throws
    /// The delivery failed and is tried again at `nextAttemptAt`: unclaimed, for any replica.
    func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws
    /// The delivery is a dead letter from `date` (unclaimed).
    func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws

    func queueDepths() async throws -> [String: QueueDepth]
    /// How many journaled events wait for routing.
    func unroutedCount() async throws -> Int
    /// The first `limit` dead letters of `selection`, oldest first, and how many there are in all.
    func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage
    /// Puts the dead letters of `selection` back in the queue, due at `now` and aged from then;
    /// returns how many. Throws ``UnknownDeadLetters`` (changing nothing) when any of
    /// `selection.ids` is not a dead letter the rest of the selection holds.
    func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int
    /// Deletes the dead letters of `selection`; returns how many. Throws ``UnknownDeadLetters``
    /// (deleting nothing) when any of `selection.ids` is not a dead letter the rest of the selection holds.
    func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int

    /// Makes every pending delivery of a sink not in `sinks` a dead letter (kept under its sink's
    /// name, with `error`, dead at `date`): a sink removed from the configuration. Returns how many
    /// per sink.
    func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int]

    /// Drops routed events with nothing left to deliver that arrived before `date`, and deduplication
    /// keys last seen before `deduplicationBefore` (the window before now). It keeps every key seen
    /// on or after that; a store may keep an expired key a while longer (the SQLite store drops a
    /// table of them at a time), which the journal does not count as a duplicate.
    func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws
}

extension StateStore {
    /// The delivery succeeded: a batch of one.
    public func recordSuccess(deliveryID: Int64) async throws {
        try await recordSuccesses(deliveryIDs: [deliveryID])
    }

    /// Reads every unrouted event and keeps those after `sequence`: correct, not fast. The stores
    /// of this package answer it with one query.
    public func unroutedEvents(after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        Array(try await unroutedEvents(limit: -1).lazy.filter { $0.sequence > sequence }.prefix(limit))
    }

    /// ``commitRouting(_:now:)`` with new deliveries due at the wall clock's now.
    @discardableResult
    public func commitRouting(_ events: [RoutedEvent]) async throws -> Set<Int64> {
        try await commitRouting(events, now: Date())
    }

    /// ``retryDeadLetters(_:now:)`` at the wall clock's now (the `dead-letters` command).
    public func retryDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try await retryDeadLetters(selection, now: Date())
    }

    /// The first `limit` dead letters, oldest first.
    public func deadLetters(limit: Int) async throws -> [DeadLetter] {
        try await deadLetters(.all, limit: limit).letters
    }

    /// Puts every dead letter back in the queue, due now; returns how many.
    public func retryAllDeadLetters() async throws -> Int { try await retryDeadLetters(.all) }

    /// Deletes every dead letter; returns how many.
    public func purgeAllDeadLetters() async throws -> Int { try await purgeDeadLetters(.all) }
}

extension StateStore {
    public func journal(_ entries: [JournalEntry], completion: @escaping @Sendable (Result<[JournalOutcome], any Error>) -> Void) {
        Task {
            do {
                completion(.success(try await journal(entries)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}
