public import Foundation
import Synchronization

/// Something the bridge did, as the admin listener's `/events` stream and status page show it.
public enum Activity: Sendable, Hashable {
    /// An event was routed: `sinks` are the sinks it was sent to (empty: no route matched);
    /// `dropped`: the enricher refused it, so it reaches no sink.
    case routed(BridgeEvent, sinks: [String], dropped: Bool = false)
    /// The recorded outcome of one delivery attempt.
    case delivered(eventID: String, sink: String, outcome: AttemptOutcome, attempt: Int, error: String? = nil)
    /// A managed subscription was created, renewed or removed (at Graph or from the bridge's care).
    case subscription(name: String, change: SubscriptionChange, graphID: String? = nil, expires: Date? = nil)
}

/// How one delivery attempt ended (the `outcome` label of `graph_bridge_deliveries_total`).
public enum AttemptOutcome: String, Sendable, Hashable {
    case success
    case retry
    case deadLetter = "dead_letter"
}

/// What happened to a managed subscription.
public enum SubscriptionChange: String, Sendable, Hashable {
    case created
    case renewed
    case removed
}

/// Where the dispatcher, the sink workers and the subscription manager report what they did
/// (``ActivityFeed`` in the running bridge). `record` must return at once: it is called on the
/// delivery path.
public protocol ActivityObserver: Sendable {
    func record(_ activity: Activity)
}

/// A small, bounded, in-memory record of recent ``Activity``, for `/events` and the status page:
/// - the latest `capacity` entries, each with an id that only grows (microseconds since 1970, or
///   one more than the previous id), so a client that reconnects with `Last-Event-ID` is given
///   exactly what it missed while the feed still holds it;
/// - live subscribers (one `AsyncStream` each; a subscriber that falls `capacity` entries behind
///   is ended, and resumes by reconnecting);
/// - what the page shows at first: the last 100 routed events with each sink's latest outcome,
///   per-sink failures and last error, and per-minute counts over the last hour.
///
/// Nothing here is durable: after a restart the feed starts empty (the store still has the events).
public final class ActivityFeed: ActivityObserver, Sendable {
    /// One recorded activity.
    public struct Entry: Sendable, Hashable {
        public var id: Int64
        public var at: Date
        public var activity: Activity
    }

    /// What a new subscriber gets.
    public struct Subscription: Sendable {
        /// The entries after the `Last-Event-ID` it gave, oldest first; nil when the feed no longer
        /// holds all of them (the caller falls back to the store).
        public var missed: [Entry]?
        /// Every entry from now on, until the subscriber falls too far behind or stops listening.
        public var live: AsyncStream<Entry>
        /// ``ActivityFeed/snapshot()`` as of the moment `live` begins.
        public var snapshot: JSONValue
    }

    /// How many routed events the page lists.
    public static let recentEventLimit = 100
    /// How many minutes the chart covers.
    public static let chartMinutes = 60

    private struct SinkOutcome {
        var outcome: String
        var attempt: Int
        var error: String?
    }

    private struct RecentEvent {
        var event: BridgeEvent
        var sinks: [String]
        var dropped: Bool
        var outcomes: [String: SinkOutcome] = [:]
    }

    private struct SinkActivity {
        var delivered = 0
        var failures = 0
        var lastError: String?
        var lastErrorAt: Date?
    }

    private struct Minute {
        var notifications = 0
        var deliveries = 0
        var failures = 0
    }

    private struct State {
        var entries: [Entry] = []
        /// The highest id no longer held (0: nothing evicted yet).
        var evictedThrough: Int64 = 0
        var lastID: Int64 = 0
        var subscribers: [Int: AsyncStream<Entry>.Continuation] = [:]
        var nextSubscriber = 0
        /// The routed events the page lists, oldest first: the last `recentEventLimit`, and up to a
        /// quarter more before them, cut in one go (not one array move per event).
        var recent: [RecentEvent] = []
        /// How many routed events were cut from `recent`'s front so far: `recent[i]` is routed event
        /// number `recentCut + i`.
        var recentCut = 0
        /// Each event id in `recent` to the number of its latest entry: a delivery finds its event
        /// here, not by comparing its id with every listed one (that was 2.2 % of a drain's
        /// samples, `perf`, a delivery of an event no longer listed comparing all of them).
        var recentNumbers: [String: Int] = [:]
        var sinks: [String: SinkActivity] = [:]
        /// Minute (seconds since 1970 / 60) to its counts; the last `chartMinutes` only.
        var minutes: [Int64: Minute] = [:]
    }

    public let capacity: Int
    private let now: @Sendable () -> Date
    /// Ids up to this one are from before the feed began.
    private let startID: Int64
    private let state = Mutex(State())

    /// - Parameters:
    ///   - capacity: how many entries are kept for `Last-Event-ID` resume and how far a subscriber may fall behind.
    ///   - now: the clock entries are stamped with (injected by tests).
    public init(capacity: Int = 2048, now: @escaping @Sendable () -> Date = { Date() }) {
        self.capacity = max(1, capacity)
        self.now = now
        startID = Int64(now().timeIntervalSince1970 * 1_000_000) - 1
    }

    public func record(_ activity: Activity) {
        let at = now()
        let behind = state.withLock { state -> [AsyncStream<Entry>.Continuation] in
            let id = max(state.lastID + 1, Int64(at.timeIntervalSince1970 * 1_000_000))
            state.lastID = id
            let entry = Entry(id: id, at: at, activity: activity)
            state.entries.append(entry)
            if state.entries.count > capacity + capacity / 4 {
                let excess = state.entries.count - capacity
                state.evictedThrough = state.entries[excess - 1].id
                state.entries.removeFirst(excess)
            }
            Self.summarise(entry, into: &state)
            // Yielded under the lock, so every subscriber gets the entries in id order.
            var behind: [AsyncStream<Entry>.Continuation] = []
            for (key, continuation) in state.subscribers {
                if case .dropped = continuation.yield(entry) {
                    state.subscribers[key] = nil
                    behind.append(continuation)
                }
            }
            return behind
        }
        // Too far behind: its stream ends; the client reconnects with its Last-Event-ID.
        for continuation in behind { continuation.finish() }
    }

    /// Subscribes, atomically with reading what was missed since `lastEventID` (nil: nothing missed).
    public func subscribe(after lastEventID: Int64? = nil) -> Subscription {
        let (stream, continuation) = AsyncStream<Entry>.makeStream(bufferingPolicy: .bufferingOldest(capacity))
        let minute = Self.minute(of: now())
        let (key, missed, snapshot) = state.withLock { state -> (Int, [Entry]?, JSONValue) in
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = continuation
            let snapshot = Self.snapshot(of: state, minute: minute)
            guard let lastEventID else { return (state.nextSubscriber, [], snapshot) }
            // Held when nothing after it was evicted and it is not from before this feed began
            // (what happened then, in an earlier process, the feed never saw).
            let covered = lastEventID >= max(state.evictedThrough, startID)
            return (state.nextSubscriber, covered ? state.entries.filter { $0.id > lastEventID } : nil, snapshot)
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        return Subscription(missed: missed, live: stream, snapshot: snapshot)
    }

    /// How many subscribers listen now.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    // MARK: What the page shows first

    /// The last 100 routed events with each sink's latest outcome (newest first), per-sink
    /// activity, and the per-minute chart of the last hour, as JSON.
    public func snapshot() -> JSONValue {
        let current = Self.minute(of: now())
        return state.withLock { Self.snapshot(of: $0, minute: current) }
    }

    private static func snapshot(of state: State, minute current: Int64) -> JSONValue {
        var object = JSONObject()
        object["lastEventId"] = .string(String(state.lastID))
        object["events"] = .array(state.recent.suffix(recentEventLimit).reversed().map { Self.json($0) })
        object["sinkActivity"] = .array(
            state.sinks.keys.sorted().map { name in
                let sink = state.sinks[name]!
                var entry: JSONObject = [
                    "name": .string(name), "delivered": .number(String(sink.delivered)), "failures": .number(String(sink.failures)),
                ]
                if let error = sink.lastError { entry["lastError"] = .string(error) }
                if let at = sink.lastErrorAt { entry["lastErrorAt"] = .string(Timestamp.format(at)) }
                return .object(entry)
            })
        let range = (current - Int64(Self.chartMinutes) + 1)...current
        object["chart"] = .object([
            "firstMinute": .string(Timestamp.format(Date(timeIntervalSince1970: Double(range.lowerBound * 60)))),
            "notifications": .array(range.map { .number(String(state.minutes[$0]?.notifications ?? 0)) }),
            "deliveries": .array(range.map { .number(String(state.minutes[$0]?.deliveries ?? 0)) }),
            "failures": .array(range.map { .number(String(state.minutes[$0]?.failures ?? 0)) }),
        ])
        return .object(object)
    }

    private static func minute(of date: Date) -> Int64 { Int64((date.timeIntervalSince1970 / 60).rounded(.down)) }

    private static func summarise(_ entry: Entry, into state: inout State) {
        let minute = minute(of: entry.at)
        switch entry.activity {
        case .routed(let event, let sinks, let dropped):
            state.minutes[minute, default: Minute()].notifications += 1
            state.recentNumbers[event.id] = state.recentCut + state.recent.count
            state.recent.append(RecentEvent(event: event, sinks: sinks, dropped: dropped))
            if state.recent.count > recentEventLimit + recentEventLimit / 4 {
                let excess = state.recent.count - recentEventLimit
                for (offset, cut) in state.recent.prefix(excess).enumerated() where state.recentNumbers[cut.event.id] == state.recentCut + offset {
                    state.recentNumbers[cut.event.id] = nil
                }
                state.recent.removeFirst(excess)
                state.recentCut += excess
            }
        case .delivered(let eventID, let sink, let outcome, let attempt, let error):
            var activity = state.sinks[sink] ?? SinkActivity()
            if outcome == .success {
                activity.delivered += 1
                state.minutes[minute, default: Minute()].deliveries += 1
            } else {
                activity.failures += 1
                activity.lastError = error
                activity.lastErrorAt = entry.at
                state.minutes[minute, default: Minute()].failures += 1
            }
            state.sinks[sink] = activity
            if let number = state.recentNumbers[eventID] {
                state.recent[number - state.recentCut].outcomes[sink] = SinkOutcome(outcome: outcome.rawValue, attempt: attempt, error: error)
            }
        case .subscription:
            break
        }
        if state.minutes.count > chartMinutes {
            state.minutes = state.minutes.filter { $0.key > minute - Int64(chartMinutes) }
        }
    }

    private static func json(_ recent: RecentEvent) -> JSONValue {
        var object = summary(recent.event)
        object["sinks"] = .array(recent.sinks.map { .string($0) })
        if recent.dropped { object["dropped"] = .bool(true) }
        object["outcomes"] = .object(
            JSONObject(
                recent.outcomes.keys.sorted().map { sink in
                    let outcome = recent.outcomes[sink]!
                    var entry: JSONObject = ["outcome": .string(outcome.outcome), "attempt": .number(String(outcome.attempt))]
                    if let error = outcome.error { entry["error"] = .string(error) }
                    return JSONObject.Member(key: sink, value: .object(entry))
                }))
        return .object(object)
    }

    // MARK: Messages

    /// The routing fields of an event: never `data` or `resourceData` (mail content has no place
    /// on a status page), nor `tenantId`.
    public static func summary(_ event: BridgeEvent) -> JSONObject {
        var object: JSONObject = ["id": .string(event.id), "receivedAt": .string(Timestamp.format(event.receivedAt))]
        object["subscription"] = .object(["name": .string(event.subscription.name), "id": .string(event.subscription.id)])
        if let changeType = event.changeType { object["changeType"] = .string(changeType) }
        if let lifecycleEvent = event.lifecycleEvent { object["lifecycleEvent"] = .string(lifecycleEvent) }
        if event.resync == true { object["resync"] = .bool(true) }
        if let resource = event.resource { object["resource"] = .string(resource) }
        return object
    }

    /// An entry as a Server-Sent Events message: its `event:` name and its `data:` JSON.
    public static func message(_ entry: Entry) -> (name: String, data: JSONValue) {
        var object: JSONObject
        let name: String
        switch entry.activity {
        case .routed(let event, let sinks, let dropped):
            name = "routed"
            object = summary(event)
            object["sinks"] = .array(sinks.map { .string($0) })
            if dropped { object["dropped"] = .bool(true) }
        case .delivered(let eventID, let sink, let outcome, let attempt, let error):
            name = "delivery"
            object = ["event": .string(eventID), "sink": .string(sink), "outcome": .string(outcome.rawValue), "attempt": .number(String(attempt))]
            if let error { object["error"] = .string(error) }
        case .subscription(let subscription, let change, let graphID, let expires):
            name = "subscription"
            object = ["name": .string(subscription), "change": .string(change.rawValue)]
            if let graphID { object["id"] = .string(graphID) }
            if let expires { object["expires"] = .string(Timestamp.format(expires)) }
        }
        object["at"] = .string(Timestamp.format(entry.at))
        return (name, .object(object))
    }
}
