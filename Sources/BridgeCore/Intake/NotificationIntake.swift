public import Foundation
public import Logging
import Metrics
import Synchronization

/// Told about lifecycle notifications once they are journaled (the subscription manager acts on them).
public protocol LifecycleObserver: Sendable {
    func lifecycleEventsJournaled(_ events: [BridgeEvent]) async
}

/// The work behind `POST /notifications` and `POST /lifecycle`: check the envelope, authenticate
/// every item by its `clientState`, journal the accepted ones durably, and say what to answer.
/// No network call, no routing: that happens after the 202.
public final class NotificationIntake: Sendable {
    public enum Endpoint: String, Sendable {
        case notifications
        case lifecycle
    }

    /// What to answer and what happened to the items.
    public struct Outcome: Sendable, Hashable {
        /// 202 (journaled, or nothing to journal), 400 (not a notification collection) or 503 (journal failed).
        public var status: Int
        public var accepted = 0
        public var duplicates = 0
        public var unknownSubscription = 0
        public var wrongClientState = 0
        public var invalid = 0
        /// For 400 and 503: why.
        public var reason: String?

        public var dropped: Int { unknownSubscription + wrongClientState + invalid }
    }

    let directory: SubscriptionDirectory
    let store: any StateStore
    let doorbell: Doorbell
    let lifecycleObserver: (any LifecycleObserver)?
    /// Asked once per request before an item for an unknown subscription is dropped (replicas).
    let directoryRefresher: (any DirectoryRefresher)?
    let backlog: Backlog
    let load: ListenerLoad?
    /// Stamped on every journaled event: this replica's dispatcher routes it.
    let replica: ReplicaID?
    let logger: Logger
    /// One "dropped" summary line per request at most, and at most one per second per kind.
    let logLimiter: LogRateLimiter
    private let journalFailure = Mutex<String?>(nil)
    /// `graph_bridge_notifications_total` handles by subscription and outcome, made on first use.
    private let counters = Mutex<[CounterKey: Counter]>([:])

    private struct CounterKey: Hashable {
        var subscription: String
        var outcome: String
    }

    /// Why the last journal write failed, until one succeeds again (for `/healthz`).
    public var lastJournalFailure: String? { journalFailure.withLock { $0 } }

    public init(
        directory: SubscriptionDirectory, store: any StateStore, doorbell: Doorbell, lifecycleObserver: (any LifecycleObserver)? = nil,
        backlog: Backlog = Backlog(limit: nil), load: ListenerLoad? = nil, replica: ReplicaID? = nil,
        directoryRefresher: (any DirectoryRefresher)? = nil, journalDeadline: Duration? = nil,
        clock: any Clock<Duration> = ContinuousClock(), logger: Logger, logLimiter: LogRateLimiter = LogRateLimiter()
    ) {
        self.journalDeadline = journalDeadline
        self.clock = clock
        self.replica = replica
        self.logLimiter = logLimiter
        self.load = load
        self.directory = directory
        self.store = store
        self.doorbell = doorbell
        self.lifecycleObserver = lifecycleObserver
        self.directoryRefresher = directoryRefresher
        self.backlog = backlog
        self.logger = logger
    }

    public func receive(body: some Collection<UInt8>, endpoint: Endpoint, now: Date = Date()) async -> Outcome {
        load?.enter()
        defer { load?.leave() }
        var reading = read(body: body, endpoint: endpoint, now: now, refreshed: false)
        if case .refresh = reading {
            // Another replica may have created it a moment ago: read the shared records once.
            await directoryRefresher?.refreshDirectory()
            reading = read(body: body, endpoint: endpoint, now: now, refreshed: true)
        }
        switch reading {
        case .answer(let outcome): return outcome
        case .journal(let entries, let outcome): return await journal(entries, outcome: outcome, endpoint: endpoint)
        case .refresh: preconditionFailure("a read after the refresh never asks for another")
        }
    }

    /// The journal write, under the deadline when there is one, and the answer after it.
    private func journal(_ entries: [JournalEntry], outcome: Outcome, endpoint: Endpoint) async -> Outcome {
        let outcomes: [JournalOutcome]
        do {
            if let journalDeadline {
                outcomes = try await Self.journal(entries, in: store, deadline: journalDeadline, clock: clock)
            } else {
                outcomes = try await store.journal(entries)
            }
        } catch {
            return journalFailed(error, endpoint: endpoint)
        }
        let (answer, lifecycleEvents) = journaled(entries, outcomes: outcomes, outcome: outcome)
        if !lifecycleEvents.isEmpty, let lifecycleObserver {
            await lifecycleObserver.lifecycleEventsJournaled(lifecycleEvents)
        }
        return answer
    }

    /// ``receive(body:endpoint:now:)`` for a caller that cannot wait: the public listener's event
    /// loop, which hands the body over and writes the answer when `completion` is called. The
    /// body is read and checked on the caller's thread (microseconds); with a local store the
    /// journal write goes straight to its writer, and `completion` is called from the writer's
    /// thread once the write is durable, so no task stands between the request and its answer.
    /// What needs a task takes one: a directory refresh, a journal deadline (a remote store), the
    /// lifecycle observer.
    ///
    /// - Parameter hop: runs the work after the write on the caller's own thread (the event loop's
    ///   `execute`). The writer's thread is the one every commit waits for: it only hands over, and
    ///   the counting and the answer happen elsewhere. By default, right there.
    public func receive(
        body: some Collection<UInt8>, endpoint: Endpoint, now: Date = Date(), hop: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void = { $0() },
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        load?.enter()
        let reading = read(body: body, endpoint: endpoint, now: now, refreshed: false)
        switch reading {
        case .answer(let outcome):
            load?.leave()
            completion(outcome)
        case .refresh:
            load?.leave()
            let body = Array(body)
            Task { completion(await self.receive(body: body, endpoint: endpoint, now: now)) }
        case .journal(let entries, let outcome):
            guard journalDeadline == nil else {
                Task {
                    let answer = await self.journal(entries, outcome: outcome, endpoint: endpoint)
                    self.load?.leave()
                    completion(answer)
                }
                return
            }
            store.journal(entries) { result in hop { self.finish(result, entries: entries, outcome: outcome, endpoint: endpoint, completion: completion) } }
        }
    }

    /// The rest of the completion form after the journal write.
    private func finish(
        _ result: Result<[JournalOutcome], any Error>, entries: [JournalEntry], outcome: Outcome, endpoint: Endpoint,
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        defer { load?.leave() }
        switch result {
        case .failure(let error):
            completion(journalFailed(error, endpoint: endpoint))
        case .success(let outcomes):
            let (answer, lifecycleEvents) = journaled(entries, outcomes: outcomes, outcome: outcome)
            if !lifecycleEvents.isEmpty, let lifecycleObserver {
                Task {
                    await lifecycleObserver.lifecycleEventsJournaled(lifecycleEvents)
                    completion(answer)
                }
            } else {
                completion(answer)
            }
        }
    }

    /// What a request's body comes to before its journal write.
    enum Reading {
        /// The answer, with nothing to journal (malformed, every item dropped, the queue full).
        case answer(Outcome)
        /// An item names a subscription this replica does not know: refresh the directory, read again.
        case refresh
        /// These entries to journal; the outcome so far (what was dropped).
        case journal([JournalEntry], Outcome)
    }

    /// Parses the body, authenticates every item by its `clientState` and builds the journal
    /// entries: everything before the journal write, on the caller's thread. `refreshed`: the
    /// directory was refreshed for this request already (an unknown subscription is then dropped).
    func read(body: some Collection<UInt8>, endpoint: Endpoint, now: Date, refreshed: Bool) -> Reading {
        let collection: ChangeNotificationCollection
        do {
            collection = try ChangeNotificationCollection(body: body)
        } catch {
            Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "malformed")]).increment()
            if case .log(let suppressed) = logLimiter.admit("malformed") {
                var metadata: Logger.Metadata = ["bridge.endpoint": "\(endpoint.rawValue)", "error": "\(error)"]
                if suppressed > 0 { metadata["bridge.suppressed_lines"] = "\(suppressed)" }
                logger.warning("rejected a malformed notification body", metadata: metadata)
            }
            return .answer(Outcome(status: 400, reason: error.description))
        }
        if !refreshed, directoryRefresher != nil,
            collection.items.contains(where: { item in item.map { Self.check($0, in: directory).subscription == nil } ?? false })
        {
            return .refresh
        }

        var outcome = Outcome(status: 202)
        // A POST with encrypted content is vouched for as a whole by its validationTokens: every change
        // item of it carries them to the delivery side, which checks them (never here, on the 202 path).
        let batchTokens = collection.items.contains { $0?.encryptedContent != nil } ? collection.validationTokens : nil
        var entries: [JournalEntry] = []
        entries.reserveCapacity(collection.items.count)
        // For the one summary line: a sample of what was dropped (never a clientState).
        var unknownSample: String?
        var wrongStateSample: String?
        for item in collection.items {
            guard let item else {
                outcome.invalid += 1
                count("unknown", "invalid")
                continue
            }
            let check = Self.check(item, in: directory)
            guard let subscription = check.subscription else {
                outcome.unknownSubscription += 1
                count("unknown", "unknown_subscription")
                if unknownSample == nil { unknownSample = item.subscriptionId }
                continue
            }
            guard check.isAccepted else {
                outcome.wrongClientState += 1
                count(subscription.name, "wrong_client_state")
                if wrongStateSample == nil { wrongStateSample = subscription.name }
                continue
            }
            var entry = Self.entry(for: item, subscription: subscription, validationTokens: batchTokens, now: now)
            entry.replica = replica
            entries.append(entry)
        }
        if outcome.dropped > 0 {
            logDropped(outcome, endpoint: endpoint, unknownSubscriptionID: unknownSample, wrongClientStateSubscription: wrongStateSample)
        }
        guard !entries.isEmpty else { return .answer(outcome) }
        if backlog.isFull {
            Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "queue_full")]).increment()
            logger.warning("the delivery queue is at state.maxQueuedDeliveries; answering 503 so Graph retries later", metadata: ["bridge.queued": "\(backlog.total)"])
            return .answer(Outcome(status: 503, reason: "the delivery queue is full"))
        }
        return .journal(entries, outcome)
    }

    /// The 503 for a journal write that failed, counted and logged; `/healthz` says why until one succeeds.
    private func journalFailed(_ error: any Error, endpoint: Endpoint) -> Outcome {
        Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "journal_failed")]).increment()
        logger.error("could not journal notifications; answering 503 so Graph retries", metadata: ["error": "\(error)"])
        journalFailure.withLock { $0 = "\(error)" }
        return Outcome(status: 503, reason: "the journal is unavailable")
    }

    /// After a journal write: the backlog and the dispatcher are told, each item counted; returns
    /// the answer and the lifecycle events journaled (for the observer).
    private func journaled(_ entries: [JournalEntry], outcomes: [JournalOutcome], outcome: Outcome) -> (Outcome, [BridgeEvent]) {
        var outcome = outcome
        backlog.journaled(outcomes.filter { $0 == .journaled }.count)
        doorbell.ring()
        if journalFailure.withLock({ $0 }) != nil {
            journalFailure.withLock { $0 = nil }
            logger.notice("journal writes work again")
        }
        var lifecycleEvents: [BridgeEvent] = []
        for (entry, result) in zip(entries, outcomes) {
            switch result {
            case .journaled:
                outcome.accepted += 1
                count(entry.event.subscription.name, "accepted")
                if entry.event.isLifecycle { lifecycleEvents.append(entry.event) }
            case .duplicate:
                outcome.duplicates += 1
                count(entry.event.subscription.name, "duplicate")
            }
        }
        for event in lifecycleEvents {
            Counter(label: "graph_bridge_lifecycle_events_total", dimensions: [("event", event.lifecycleEvent ?? "unknown")]).increment()
        }
        return (outcome, lifecycleEvents)
    }

    /// How long a journal write may take before the answer is 503. Graph wants an answer well
    /// inside 3 s, and a store it cannot reach (PostgreSQL stopped) would otherwise hold every
    /// request for as long as its connection attempts last (a minute and more).
    public static let remoteStoreJournalDeadline: Duration = .seconds(5)

    /// How long a journal write may take before the answer is 503; nil: as long as the store takes
    /// (a local SQLite file: its writes do not wait on a network, and the 202 path spends no tasks
    /// or timers on a deadline).
    let journalDeadline: Duration?
    /// What the journal deadline is measured on.
    let clock: any Clock<Duration>

    /// `store.journal(entries)`, given up after `deadline` on `clock` (cancelled: a store waiting
    /// for a connection stops waiting). A write already under way may still commit after the 503:
    /// then Graph's retry is a duplicate.
    static func journal(
        _ entries: [JournalEntry], in store: any StateStore, deadline: Duration, clock: any Clock<Duration>
    ) async throws -> [JournalOutcome] {
        let write = Task { try await store.journal(entries) }
        let timer = Task {
            try await clock.sleep(for: deadline)
            write.cancel()
        }
        defer { timer.cancel() }
        do {
            return try await write.value
        } catch is CancellationError {
            throw JournalTimeout(deadline: deadline)
        }
    }

    struct JournalTimeout: Error, CustomStringConvertible {
        var deadline: Duration
        var description: String { "the state store did not take the write within \(deadline.components.seconds) s" }
    }

    /// The longest sample of an unknown subscription id that a log line shows.
    static let sampleLimit = 100

    /// One line for all the items of a request that were dropped, with their counts by reason;
    /// at most one a second per combination of reasons (``LogRateLimiter``).
    private func logDropped(_ outcome: Outcome, endpoint: Endpoint, unknownSubscriptionID: String?, wrongClientStateSubscription: String?) {
        var reasons: [String] = []
        var metadata: Logger.Metadata = ["bridge.endpoint": "\(endpoint.rawValue)", "bridge.dropped": "\(outcome.dropped)"]
        if outcome.unknownSubscription > 0 {
            reasons.append("unknown_subscription")
            metadata["bridge.dropped.unknown_subscription"] = "\(outcome.unknownSubscription)"
        }
        if outcome.wrongClientState > 0 {
            reasons.append("wrong_client_state")
            metadata["bridge.dropped.wrong_client_state"] = "\(outcome.wrongClientState)"
        }
        if outcome.invalid > 0 {
            reasons.append("invalid")
            metadata["bridge.dropped.invalid"] = "\(outcome.invalid)"
        }
        guard case .log(let suppressed) = logLimiter.admit("dropped:" + reasons.joined(separator: "+")) else { return }
        if let unknownSubscriptionID {
            // Sent by whoever posted: cut short (the log handler escapes control characters).
            var sample = String(unknownSubscriptionID.prefix(Self.sampleLimit))
            if sample.count < unknownSubscriptionID.count { sample += "…" }
            metadata["bridge.subscription_id"] = "\(sample)"
        }
        if let wrongClientStateSubscription { metadata["bridge.subscription"] = "\(wrongClientStateSubscription)" }
        if suppressed > 0 { metadata["bridge.suppressed_lines"] = "\(suppressed)" }
        logger.warning("dropped notification items of a request (forged, stale or misaddressed); counts by reason", metadata: metadata)
    }

    private func count(_ subscription: String, _ outcome: String) {
        let key = CounterKey(subscription: subscription, outcome: outcome)
        let counter = counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "graph_bridge_notifications_total", dimensions: [("subscription", subscription), ("outcome", outcome)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The key Graph's duplicates share: the subscription's name (the same across a recreate),
    /// the kind of change (`deleted`, or `changed` for `created` and `updated` alike: one version
    /// of an item is one change, and a delta resync can only guess which of the two it was), the
    /// item (the last segment of `resource`, so `Users/{guid}/Messages/{m}` from Graph and
    /// `users/{upn}/mailFolders/inbox/messages/{m}` from a delta resync name the same item) and
    /// the etag (left out for `deleted`: an item is deleted once, and a delta's `@removed` has
    /// none). A delta resync builds its events' keys here too, so a change Graph also notified is
    /// delivered once.
    ///
    /// Once per notification, so it works on UTF-8 bytes (no `split`, no grapheme breaking): the
    /// same keys for the paths Graph and a resync send, which are ASCII; `IntakeTests` compares it
    /// with the first, character-based version, whose keys state files hold.
    public static func deduplicationKey(subscription: String, changeType: String, resource: String, etag: String) -> String {
        let slash = UInt8(ascii: "/")
        let path = resource.utf8
        // The last segment that is not empty.
        var end = path.endIndex
        while end > path.startIndex, path[path.index(before: end)] == slash { end = path.index(before: end) }
        let start = path[..<end].lastIndex(of: slash).map { path.index(after: $0) } ?? path.startIndex
        var item = Substring(resource[start..<end])
        // `Messages('AAMk...')`: the id inside.
        if let open = item.utf8.firstIndex(of: UInt8(ascii: "(")), item.utf8.last == UInt8(ascii: ")") {
            item = item[item.utf8.index(after: open)..<item.utf8.index(before: item.utf8.endIndex)]
            if item.utf8.count >= 2, item.utf8.first == UInt8(ascii: "'"), item.utf8.last == UInt8(ascii: "'") {
                item = item[item.utf8.index(after: item.utf8.startIndex)..<item.utf8.index(before: item.utf8.endIndex)]
            }
        }
        let deleted = changeType == "deleted"
        let separator = "\u{1F}"
        var key = subscription
        key.reserveCapacity(subscription.utf8.count + item.utf8.count + etag.utf8.count + 10)
        key += separator
        key += deleted ? "deleted" : "changed"
        key += separator
        key += item
        key += separator
        if !deleted { key += etag }
        return key
    }

    /// Builds the event (SPEC section 6) and its deduplication key from an authenticated item.
    ///
    /// - Parameter validationTokens: the POST's `validationTokens` when any item of it carries
    ///   `encryptedContent`, else nil. A change item then keeps them (and its own encrypted content)
    ///   in the journal entry's attachment, so the whole POST is checked after the 202.
    public static func entry(for item: ChangeNotification, subscription: SubscriptionEntry, validationTokens: [String]?, now: Date) -> JournalEntry {
        let event = BridgeEvent(
            id: EventID.make(at: now),
            receivedAt: now,
            subscription: SubscriptionReference(name: subscription.name, id: subscription.id, resource: subscription.resource),
            changeType: item.changeType,
            lifecycleEvent: item.lifecycleEvent,
            resource: item.resource,
            resourceData: item.resourceData,
            tenantId: item.tenantId
        )
        var key: String?
        if let changeType = item.changeType, item.etag != nil || changeType == "deleted" {
            key = deduplicationKey(subscription: subscription.name, changeType: changeType, resource: item.resource ?? "", etag: item.etag ?? "")
        }
        var attachment: JSONValue?
        if let validationTokens, !item.isLifecycle {
            var object: JSONObject = ["validationTokens": .array(validationTokens.map(JSONValue.string))]
            if let encrypted = item.encryptedContent { object["encryptedContent"] = encrypted }
            attachment = .object(object)
        }
        return JournalEntry(event: event, deduplicationKey: key, attachment: attachment)
    }
}
