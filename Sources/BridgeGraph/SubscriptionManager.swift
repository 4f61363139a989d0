public import BridgeCore
import BridgeSettings
import Foundation
import GraphClient
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// Keeps the bridge's own Graph subscriptions alive, unattended: reuses what the state store
/// remembers when Graph still has it, creates what is missing, renews well before expiry,
/// recreates after a 404 or `subscriptionRemoved`, reauthorizes on `reauthorizationRequired`,
/// and deletes subscriptions that left the configuration. Everything it knows is in the state
/// store, so a restart creates no duplicate.
public final class SubscriptionManager: Service, LifecycleObserver {
    /// A managed subscription as `bridge.yaml` declares it.
    public struct Declaration: Sendable {
        public var name: String
        public var resource: String
        public var changeTypes: [String]
        public var expiration: Duration?
        public var includeResourceData: Bool
        /// Rich notifications: the certificate Graph encrypts for (base64 DER) and its id.
        public var encryption: Encryption?
        /// `resync: delta`: keep a deltaLink and catch up after gaps (see ``DeltaResource`` for the resources).
        public var resync: Bool

        /// `encryption:` as Graph takes it with the subscription.
        public struct Encryption: Sendable, Hashable {
            /// `encryptionCertificate`: base64 of the certificate's DER (public key only).
            public var certificate: String
            /// `encryptionCertificateId`.
            public var id: String

            public init(certificate: String, id: String) {
                self.certificate = certificate
                self.id = id
            }
        }

        public init(
            name: String, resource: String, changeTypes: [String], expiration: Duration?, includeResourceData: Bool, encryption: Encryption? = nil,
            resync: Bool = false
        ) {
            self.resync = resync
            self.name = name
            self.resource = resource
            self.changeTypes = changeTypes
            self.expiration = expiration
            self.includeResourceData = includeResourceData
            self.encryption = encryption
        }

        /// The lifetime to ask for: the configured one, capped at Graph's maximum for the resource.
        var lifetime: Duration {
            let maximum = ResourceLifetime.maximum(for: resource, includeResourceData: includeResourceData)
            return min(expiration ?? maximum, maximum)
        }
    }

    /// Per-subscription state, owned by its keeper: the decisions of ``SubscriptionUpkeep``.
    private typealias Tracked = SubscriptionUpkeep

    /// Where resync events go: the journal and the dispatcher's doorbell.
    private struct ResyncJournal: Sendable {
        var store: any StateStore
        var doorbell: Doorbell
    }

    let declarations: [Declaration]
    let graph: any SubscriptionGraph
    let store: any SubscriptionStore
    let directory: SubscriptionDirectory
    let readiness: ListenerReadiness
    let publicURL: @Sendable (Int) -> String
    let logger: Logger
    let maxRetryDelay: Duration
    /// Dates for decisions and the keepers' waits.
    let clock: any UpkeepClock
    /// How often a `resync: delta` subscription follows the delta while all is well, so its
    /// deltaLink stays within the 4 h in which notified changes are recognised as duplicates.
    let deltaRefresh: Duration
    /// Told of every create, renewal and removal (the admin listener's `/events`).
    let activity: (any ActivityObserver)?
    /// Graph calls for upkeep in flight at once (creates, renewals, reauthorizations).
    private let calls: CallLimit
    /// One per declared subscription: rung when a lifecycle request for it arrives.
    private let doorbells: [String: Doorbell]
    /// Lifecycle requests not yet taken by their subscription's keeper, by subscription name.
    private let requests = Mutex<[String: [SubscriptionUpkeep.LifecycleRequest]]>([:])
    private let started = Mutex(false)
    private let resyncJournal = Mutex<ResyncJournal?>(nil)
    /// How long the bridge may be down before a start resyncs: Graph retries a notification for 4 h.
    static let outageLimit: TimeInterval = 4 * 3600

    /// - Parameters:
    ///   - publicURL: the URL Graph reaches the listener at, given the bound port (`server.publicUrl`, or the loopback URL in `demo`).
    ///   - clock: the dates renewals, retries and resyncs are decided by, and the keepers' waits; tests move their own forward.
    public init(
        declarations: [Declaration],
        graph: any SubscriptionGraph,
        store: any SubscriptionStore,
        directory: SubscriptionDirectory,
        readiness: ListenerReadiness,
        publicURL: @escaping @Sendable (Int) -> String,
        logger: Logger,
        maxRetryDelay: Duration = .seconds(900),
        maxConcurrentCalls: Int = 4,
        deltaRefresh: Duration = .seconds(3600),
        activity: (any ActivityObserver)? = nil,
        clock: any UpkeepClock = SystemUpkeepClock()
    ) {
        self.activity = activity
        self.clock = clock
        self.deltaRefresh = deltaRefresh
        self.declarations = declarations
        self.graph = graph
        self.store = store
        self.directory = directory
        self.readiness = readiness
        self.publicURL = publicURL
        self.logger = logger
        self.maxRetryDelay = maxRetryDelay
        self.calls = CallLimit(maxConcurrentCalls)
        self.doorbells = Dictionary(declarations.map { ($0.name, Doorbell()) }, uniquingKeysWith: { first, _ in first })
    }

    /// Gives the manager the journal its delta resyncs write to and the dispatcher's doorbell
    /// (``DeliveryEngine/journalDoorbell``), rung after each page so resync events route at once.
    /// Call it before ``run()``; without it, resyncs follow the delta but journal nothing.
    public func connectJournal(_ store: any StateStore, doorbell: Doorbell) {
        resyncJournal.withLock { $0 = ResyncJournal(store: store, doorbell: doorbell) }
    }

    /// Subscriptions whose records are ready (Graph id known): for `/healthz`.
    public var isReady: Bool { started.withLock { $0 } }

    // MARK: Lifecycle events

    public func lifecycleEventsJournaled(_ events: [BridgeEvent]) async {
        for event in events {
            let name = event.subscription.name
            let request: SubscriptionUpkeep.LifecycleRequest
            switch event.lifecycleEvent {
            case "reauthorizationRequired": request = .reauthorizationRequired(graphID: event.subscription.id)
            case "subscriptionRemoved": request = .subscriptionRemoved(graphID: event.subscription.id)
            // `missed` is also routed like any event, so a rule can alert on it.
            case "missed": request = .missed(graphID: event.subscription.id)
            default: continue
            }
            guard let doorbell = doorbells[name] else { continue }
            requests.withLock { $0[name, default: []].append(request) }
            doorbell.ring()
        }
    }

    // MARK: Run loop

    public func run() async throws {
        // Nothing to do before the listener is up; a listener that cannot start (or SIGTERM
        // before it does) ends the wait, so a failed start-up never hangs here.
        let port: Int
        do {
            port = try await cancelWhenGracefulShutdown { try await self.readiness.port() }
        } catch {
            return
        }
        let base = publicURL(port)
        let notificationURL = base + "/notifications"
        let lifecycleURL = base + "/lifecycle"

        // A Graph call can hang, or wait out a long Retry-After, for longer than the 10 s a stop
        // may take: on graceful shutdown the work is cancelled, not awaited (CurlKit aborts the
        // transfer). Nothing is lost: what the manager knows is in the store before and after
        // each call, and a create cut short is found again at the next start (its clientState
        // was stored first; Graph's 409 leads to adopting it).
        await cancelWhenGracefulShutdown {
            var tracked = Dictionary(
                uniqueKeysWithValues: self.declarations.map { ($0.name, Tracked(declaration: $0, deltaRefresh: self.deltaRefresh)) })
            await self.reconcile(&tracked, notificationURL: notificationURL)
            guard !Task.isCancelled else { return }
            self.started.withLock { $0 = true }
            // One keeper per subscription, so a create that hangs at Graph (or waits out a long
            // Retry-After) delays no other subscription's renewal; `calls` bounds how many talk to
            // Graph at once.
            await withDiscardingTaskGroup { group in
                for item in tracked.values {
                    group.addTask { await self.keep(item, notificationURL: notificationURL, lifecycleURL: lifecycleURL) }
                }
            }
            // With nothing left to keep (only deletions were due), stay a running service until stopped.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// Keeps one subscription alive until cancelled: creates, renews or reauthorizes it when due,
    /// and acts on the lifecycle requests Graph sends for it.
    private func keep(_ start: Tracked, notificationURL: String, lifecycleURL: String) async {
        var item = start
        let name = item.declaration.name
        guard let doorbell = doorbells[name] else { return }
        while !Task.isCancelled {
            applyRequests(to: &item)
            let now = clock.now
            let action = item.next(now: now)
            if case .wait(let until) = action {
                let wait = max(0.05, min(3600, until.timeIntervalSince(now)))
                await clock.sleep(for: .milliseconds(Int64(wait * 1000)), orUntilRung: doorbell)
                continue
            }
            do {
                try await calls.run { await self.perform(action, on: &item, notificationURL: notificationURL, lifecycleURL: lifecycleURL) }
            } catch {
                return  // cancelled while waiting for a turn
            }
        }
    }

    private func applyRequests(to item: inout Tracked) {
        let name = item.declaration.name
        let pending = requests.withLock { $0.removeValue(forKey: name) ?? [] }
        for request in pending {
            switch item.apply(request) {
            case .ignored:
                break
            case .reauthorize:
                logger.info("Graph asks to reauthorize the subscription", metadata: ["bridge.subscription": "\(name)"])
            case .recreate(let graphID):
                logger.warning("Graph removed the subscription; creating it again", metadata: ["bridge.subscription": "\(name)"])
                directory.remove(subscriptionID: graphID)
                forgetExpiry(name)
            case .resync:
                logger.warning("Graph missed notifications; following the delta to catch up", metadata: ["bridge.subscription": "\(name)"])
            }
        }
    }

    /// Performs `action` (never `.wait`) and reports the outcome to `item`.
    private func perform(_ action: SubscriptionUpkeep.Action, on item: inout Tracked, notificationURL: String, lifecycleURL: String) async {
        var logger = self.logger
        logger[metadataKey: "bridge.subscription"] = "\(item.declaration.name)"
        do {
            switch action {
            case .wait:
                return
            case .create(let recreating):
                let record = try await create(&item, notificationURL: notificationURL, lifecycleURL: lifecycleURL, logger: logger)
                var deltaLinkKept = false
                if item.declaration.resync, recreating {
                    // The deltaLink outlives the subscription: a recreate catches up on what fell between the two.
                    deltaLinkKept = try await StoredDeltaLink.load(item.declaration.name, from: store)?.resource == item.declaration.resource
                }
                item.created(record, recreating: recreating, deltaLinkKept: deltaLinkKept)
            case .updateCertificate:
                try await updateCertificate(&item, logger: logger)
            case .reauthorize:
                try await reauthorize(&item, logger: logger)
            case .resync:
                try await resync(&item, logger: logger)
            case .renew:
                try await renew(&item, logger: logger)
            }
        } catch let error as GraphError where error.kind == .notFound && item.graphID != nil {
            logger.warning("Graph no longer has the subscription; creating it again", metadata: ["bridge.graph_id": "\(item.graphID ?? "-")"])
            if let id = item.lost() { directory.remove(subscriptionID: id) }
            forgetExpiry(item.declaration.name)
        } catch where Task.isCancelled {
            return  // stopping: not a failure; the next start picks up from the store
        } catch {
            Counter(label: "graph_bridge_subscription_upkeep_failures_total", dimensions: [("subscription", item.declaration.name)]).increment()
            let retryAfter = (error as? GraphError)?.retryAfter ?? (error as? ResyncFailure)?.error.retryAfter
            let wait = item.failed(now: clock.now, retryAfter: retryAfter, maxRetryDelay: maxRetryDelay)
            logger.error("subscription upkeep failed; will retry", metadata: [
                "error": "\(Self.explain(error, declaration: item.declaration))", "bridge.retry_in": "\(Int(wait))s",
            ])
        }
    }

    /// Creates the subscription (or adopts the one Graph already has after a 409); returns its record.
    private func create(_ item: inout Tracked, notificationURL: String, lifecycleURL: String, logger: Logger) async throws -> SubscriptionRecord {
        let declaration = item.declaration
        // The clientState is stored before Graph hears of it, so a crash after Graph's answer
        // still leaves a subscription whose notifications can be verified (and adopted on 409).
        var record = item.record ?? SubscriptionRecord(
            name: declaration.name, graphID: nil, resource: declaration.resource, changeTypes: declaration.changeTypes.joined(separator: ","),
            clientState: Self.newClientState(), notificationURL: notificationURL, expiration: nil, renewedAt: nil, managed: true
        )
        record.graphID = nil
        record.notificationURL = notificationURL
        try await store.saveSubscription(record)
        item.record = record
        // Graph may notify before its answer to the create reaches us (or when it never does).
        directory.expect(name: declaration.name, resource: declaration.resource, clientState: record.clientState)

        let now = clock.now
        let expiration = now.addingTimeInterval(declaration.lifetime.seconds)
        let subscription: GraphSubscription
        do {
            subscription = try await graph.createSubscription(SubscriptionRequest(
                resource: declaration.resource, changeTypes: declaration.changeTypes, notificationURL: notificationURL,
                lifecycleNotificationURL: lifecycleURL, expiration: expiration, clientState: record.clientState,
                includeResourceData: declaration.includeResourceData, encryptionCertificate: declaration.encryption?.certificate,
                encryptionCertificateID: declaration.encryption?.id
            ))
        } catch let error as GraphError where error.kind == .conflict {
            guard let existing = try await graph.listSubscriptions().first(where: {
                $0.resource.caseInsensitiveCompare(declaration.resource) == .orderedSame && $0.notificationUrl == notificationURL
            }) else { throw error }
            logger.warning("Graph already has this subscription (409); adopting it with the stored clientState", metadata: ["bridge.graph_id": "\(existing.id)"])
            if SubscriptionUpkeep.check(existing, against: declaration) == .updateCertificate, let encryption = declaration.encryption {
                subscription = try await graph.updateEncryptionCertificate(
                    id: existing.id, certificate: encryption.certificate, certificateID: encryption.id, until: expiration)
            } else {
                subscription = try await graph.renewSubscription(id: existing.id, until: expiration)
            }
        }
        record.graphID = subscription.id
        record.expiration = subscription.expiration ?? expiration
        record.renewedAt = now
        try await store.saveSubscription(record)
        directory.upsert(SubscriptionEntry(name: declaration.name, id: subscription.id, resource: declaration.resource, clientState: record.clientState))
        recordExpiry(record)
        activity?.record(.subscription(name: declaration.name, change: .created, graphID: subscription.id, expires: record.expiration))
        logger.notice("created Graph subscription", metadata: ["bridge.graph_id": "\(subscription.id)", "bridge.expires": "\(subscription.expirationDateTime)"])
        return record
    }

    private func renew(_ item: inout Tracked, logger: Logger) async throws {
        guard var record = item.record, let id = record.graphID else { return }
        let now = clock.now
        let subscription = try await graph.renewSubscription(id: id, until: now.addingTimeInterval(item.declaration.lifetime.seconds))
        record.expiration = subscription.expiration ?? now.addingTimeInterval(item.declaration.lifetime.seconds)
        record.renewedAt = now
        try await store.saveSubscription(record)
        item.renewed(record, graphCertificateID: subscription.encryptionCertificateId)
        recordExpiry(record)
        activity?.record(.subscription(name: record.name, change: .renewed, graphID: id, expires: record.expiration))
        logger.info("renewed Graph subscription", metadata: ["bridge.graph_id": "\(id)", "bridge.expires": "\(subscription.expirationDateTime)"])
    }

    /// Key rotation: moves the subscription to the declared certificate (`encryptionCertificate`
    /// and `encryptionCertificateId`) and renews it in the same PATCH, keeping its id, clientState
    /// and deltaLink. Items Graph encrypted before still name the old id: `encryption.previous`
    /// decrypts them.
    private func updateCertificate(_ item: inout Tracked, logger: Logger) async throws {
        guard var record = item.record, let id = record.graphID, let encryption = item.declaration.encryption else {
            item.certificateDue = false
            return
        }
        let now = clock.now
        let lifetime = item.declaration.lifetime.seconds
        let subscription = try await graph.updateEncryptionCertificate(
            id: id, certificate: encryption.certificate, certificateID: encryption.id, until: now.addingTimeInterval(lifetime))
        record.expiration = subscription.expiration ?? now.addingTimeInterval(lifetime)
        record.renewedAt = now
        try await store.saveSubscription(record)
        item.certificateUpdated(record)
        recordExpiry(record)
        activity?.record(.subscription(name: record.name, change: .renewed, graphID: record.graphID, expires: record.expiration))
        logger.notice("moved the Graph subscription to the new encryption certificate", metadata: [
            "bridge.graph_id": "\(id)", "bridge.encryption_id": "\(encryption.id)", "bridge.expires": "\(subscription.expirationDateTime)",
        ])
    }

    // MARK: Delta resync

    /// Takes a new baseline or follows the delta from the stored deltaLink, journaling one event
    /// per changed item; a `410` (the delta state is gone) takes a new baseline and says so.
    private func resync(_ item: inout Tracked, logger: Logger) async throws {
        let declaration = item.declaration
        guard let graphID = item.record?.graphID else { return }
        let stored = try await StoredDeltaLink.load(declaration.name, from: store)
        guard let stored, stored.resource == declaration.resource, !item.baselineDue else {
            try await takeBaseline(&item, logger: logger)
            return
        }
        let reason = item.resyncReason ?? "refresh"
        if reason != "refresh", stored.pending != reason {
            // Owed until it finishes: a stop in the middle resumes it at the next start.
            var owed = stored
            owed.pending = reason
            try await owed.save(declaration.name, to: store)
        }
        let subscription = SubscriptionReference(name: declaration.name, id: graphID, resource: declaration.resource)
        let journal = resyncJournal.withLock { $0 }
        let startedAt = clock.now
        var emitted = 0
        var duplicates = 0
        let link: String
        do {
            link = try await DeltaResync.follow(graph, from: stored.link) { items in
                let now = self.clock.now
                // Only the change types the subscription asks Graph for.
                let entries = items.compactMap {
                    DeltaResync.entry(for: $0, subscription: subscription, declaredResource: declaration.resource, since: stored.takenAt, now: now)
                }.filter { declaration.changeTypes.contains($0.event.changeType ?? "") }
                guard !entries.isEmpty, let journal else { return }
                let outcomes = try await journal.store.journal(entries)
                let journaled = outcomes.filter { $0 == .journaled }.count
                emitted += journaled
                duplicates += outcomes.count - journaled
                if journaled > 0 {
                    Counter(label: "graph_bridge_resync_events_total", dimensions: [("subscription", declaration.name)]).increment(by: Int64(journaled))
                    journal.doorbell.ring()
                }
            }
        } catch let error as GraphError where error.isDeltaStateLost {
            logger.warning("Graph no longer has the delta state (410 SyncStateNotFound); taking a new baseline: changes since the last deltaLink may have been missed", metadata: [
                "bridge.resync_reason": "\(reason)", "bridge.graph_code": "\(error.code ?? "-")", "bridge.request_id": "\(error.requestID ?? "-")",
            ])
            try await takeBaseline(&item, logger: logger)
            return
        } catch let error as GraphError {
            throw ResyncFailure(error: error)
        }
        try await StoredDeltaLink(link: link, resource: declaration.resource, takenAt: startedAt).save(declaration.name, to: store)
        item.resynced(takenAt: startedAt)
        recordDeltaQuery(declaration.name, takenAt: startedAt)
        if journal == nil, reason != "refresh" {
            logger.warning("followed the delta but has no journal to write resync events to")
        }
        let level: Logger.Level = reason == "refresh" && emitted == 0 ? .debug : .notice
        logger.log(level: level, "followed the delta (resync)", metadata: [
            "bridge.resync_reason": "\(reason)", "bridge.resync_events": "\(emitted)", "bridge.resync_duplicates": "\(duplicates)",
        ])
    }

    /// Follows a delta query from the start, emitting nothing, and stores its deltaLink.
    private func takeBaseline(_ item: inout Tracked, logger: Logger) async throws {
        let declaration = item.declaration
        let startedAt = clock.now
        var items = 0
        let link: String
        do {
            link = try await DeltaResync.follow(graph, from: DeltaResource.deltaPath(for: declaration.resource)) { items += $0.count }
        } catch let error as GraphError {
            throw ResyncFailure(error: error)
        }
        try await StoredDeltaLink(link: link, resource: declaration.resource, takenAt: startedAt).save(declaration.name, to: store)
        item.resynced(takenAt: startedAt)
        recordDeltaQuery(declaration.name, takenAt: startedAt)
        logger.info("took a delta baseline (no events for what was already there)", metadata: ["bridge.items": "\(items)"])
    }

    /// A delta query failed: retried with backoff like any upkeep failure (never read as "the subscription is gone").
    struct ResyncFailure: Error, CustomStringConvertible {
        var error: GraphError
        var description: String { "delta query failed: \(error)" }
    }

    private func reauthorize(_ item: inout Tracked, logger: Logger) async throws {
        guard let id = item.record?.graphID else { return }
        do {
            try await graph.reauthorizeSubscription(id: id)
            logger.info("reauthorized Graph subscription", metadata: ["bridge.graph_id": "\(id)"])
        } catch let error as GraphError where error.kind != .notFound {
            logger.warning("reauthorize failed; renewing instead (a renewal reauthorizes too)", metadata: ["error": "\(error)"])
            try await renew(&item, logger: logger)
        }
        item.reauthorized()
    }

    // MARK: Start-up

    /// Puts the managed subscriptions the state store knows into the directory. Call it before the
    /// listener opens: after a restart Graph may deliver (or replay its backlog) at once, and the
    /// reconcile with Graph below can take as long as Graph does. A record whose create never got
    /// Graph's answer is *expected*: its clientState is known, its id not yet.
    ///
    /// Only subscriptions still declared are admitted; one that left the configuration is deleted
    /// at Graph by the reconcile, and its notifications are dropped meanwhile.
    public func admitStoredSubscriptions() async throws {
        let declared = Set(declarations.map(\.name))
        for record in try await store.subscriptionRecords() where record.managed && declared.contains(record.name) {
            if let id = record.graphID {
                directory.upsert(SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState))
            } else {
                directory.expect(name: record.name, resource: record.resource, clientState: record.clientState)
            }
        }
    }

    /// Matches the store against the configuration and Graph: adopt what still exists, delete what
    /// left the file, queue creation for the rest.
    private func reconcile(_ tracked: inout [String: Tracked], notificationURL: String) async {
        let records: [SubscriptionRecord]
        do {
            records = try await store.subscriptionRecords()
        } catch {
            logger.error("cannot read stored subscriptions; creating all", metadata: ["error": "\(error)"])
            return
        }
        for record in records where record.managed {
            if Task.isCancelled { return }  // stopping
            let decision = SubscriptionUpkeep.start(stored: record, declaration: tracked[record.name]?.declaration, notificationURL: notificationURL)
            guard decision != .retire, var item = tracked[record.name] else {
                await retire(record)
                continue
            }
            guard decision != .replace else {
                logger.notice("subscription changed in the configuration; replacing it", metadata: ["bridge.subscription": "\(record.name)"])
                item.record = await replacement(for: record)
                tracked[record.name] = item
                continue
            }
            item.record = record
            if decision == .check, let id = record.graphID {
                do {
                    let existing = try await graph.subscription(id: id)
                    let check = SubscriptionUpkeep.check(existing, against: item.declaration)
                    guard check != .replace else {
                        // includeResourceData changed: Graph takes it only with a new subscription.
                        logger.notice(
                            "includeResourceData changed in the configuration; replacing the subscription",
                            metadata: ["bridge.subscription": "\(record.name)"])
                        item.record = await replacement(for: record)
                        tracked[record.name] = item
                        continue
                    }
                    if check == .updateCertificate {
                        // A new encryption key: the keeper PATCHes the certificate onto this subscription.
                        logger.notice("the encryption certificate changed in the configuration; moving the subscription to it", metadata: [
                            "bridge.subscription": "\(record.name)", "bridge.encryption_id": "\(item.declaration.encryption?.id ?? "-")",
                        ])
                        item.certificateDue = true
                    }
                    item.record?.expiration = existing.expiration ?? record.expiration
                    directory.upsert(SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState))
                    recordExpiry(item.record!)
                    logger.info("reusing Graph subscription", metadata: ["bridge.subscription": "\(record.name)", "bridge.graph_id": "\(id)"])
                } catch let error as GraphError where error.kind == .notFound {
                    logger.notice("stored subscription is gone from Graph; creating it again", metadata: ["bridge.subscription": "\(record.name)"])
                    directory.remove(subscriptionID: id)
                    item.record?.graphID = nil
                } catch where Task.isCancelled {
                    return  // stopping
                } catch {
                    // Graph unreachable: keep accepting its notifications; the renewal will find out.
                    directory.upsert(SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState))
                    item.retryAt = clock.now.addingTimeInterval(30)
                    logger.warning("cannot check stored subscription with Graph; keeping it", metadata: ["bridge.subscription": "\(record.name)", "error": "\(error)"])
                }
            }
            tracked[record.name] = item
        }
        if Task.isCancelled { return }
        await planResyncs(&tracked)
        // Known: every stored subscription (managed or receive-only) and every one the listener accepts.
        let known = Set(records.compactMap { $0.graphID?.lowercased() }).union(directory.all.map { $0.id.lowercased() })
        // A record still waiting for its id is adopted by the create (Graph answers 409), not deleted.
        let awaited = Set(tracked.values.compactMap { $0.record }.filter { $0.graphID == nil }.map { $0.resource.lowercased() })
        await deleteOrphans(notificationURL: notificationURL, known: known, awaited: awaited)
    }

    /// At start, for each reused `resync: delta` subscription: a baseline when no deltaLink is
    /// stored for its resource; a resync when the bridge was down longer than Graph retries
    /// (its last notification, renewal and delta query all older than 4 h).
    private func planResyncs(_ tracked: inout [String: Tracked]) async {
        let now = clock.now
        for (name, var item) in tracked where item.declaration.resync {
            guard let record = item.record, record.graphID != nil else { continue }  // a create comes first
            let stored: StoredDeltaLink?
            do {
                stored = try await StoredDeltaLink.load(name, from: store)
            } catch {
                logger.error("cannot read the stored deltaLink; taking a new baseline", metadata: ["bridge.subscription": "\(name)", "error": "\(error)"])
                stored = nil
            }
            switch item.planStartResync(stored: stored, now: now, outageLimit: Self.outageLimit) {
            case .none, .baseline:
                break
            case .resume(let pending):
                logger.notice("a resync did not finish before the bridge stopped; following the delta again", metadata: [
                    "bridge.subscription": "\(name)", "bridge.resync_reason": "\(pending)",
                ])
            case .outage(let lastAlive):
                logger.warning("the bridge was down longer than Graph retries notifications (4 h); following the delta to catch up", metadata: [
                    "bridge.subscription": "\(name)", "bridge.last_seen": "\(Timestamp.format(lastAlive))",
                ])
            }
            if let taken = item.deltaTakenAt { recordDeltaQuery(name, takenAt: taken) }
            tracked[name] = item
        }
    }

    /// Deletes the subscriptions at Graph that notify this bridge (`notificationURL`) and that it
    /// does not know: what a create whose answer was lost left behind (Graph made it, the bridge
    /// never learnt its id). Subscriptions pointing anywhere else are left alone: other bridges and
    /// other apps' subscriptions of the same registration.
    /// `awaited`: resources of records whose create got no answer; a subscription on one of them
    /// is that create's, and is adopted instead.
    private func deleteOrphans(notificationURL: String, known: Set<String>, awaited: Set<String>) async {
        let listed: [GraphSubscription]
        do {
            listed = try await graph.listSubscriptions()
        } catch {
            if !Task.isCancelled {
                logger.warning("cannot list Graph's subscriptions to find orphans; trying again at the next start", metadata: ["error": "\(error)"])
            }
            return
        }
        for orphan in listed where orphan.notificationUrl == notificationURL && !known.contains(orphan.id.lowercased())
            && !awaited.contains(orphan.resource.lowercased())
        {
            do {
                try await graph.deleteSubscription(id: orphan.id)
                logger.notice("deleted an orphaned Graph subscription that notifies this bridge but is in no record (a create whose answer was lost)", metadata: [
                    "bridge.graph_id": "\(orphan.id)", "bridge.resource": "\(orphan.resource)",
                ])
            } catch let error as GraphError where error.kind == .notFound {
            } catch {
                if Task.isCancelled { return }
                logger.warning("could not delete an orphaned Graph subscription; it will expire by itself", metadata: ["bridge.graph_id": "\(orphan.id)", "error": "\(error)"])
            }
        }
    }

    /// Deletes `record`'s subscription at Graph and returns the record to create it again with (a fresh clientState).
    private func replacement(for record: SubscriptionRecord) async -> SubscriptionRecord {
        await retire(record, keepRecord: true)
        var fresh = record
        fresh.graphID = nil
        fresh.clientState = Self.newClientState()
        return fresh
    }

    /// Deletes a subscription at Graph (a 404 means it is already gone) and forgets it.
    private func retire(_ record: SubscriptionRecord, keepRecord: Bool = false) async {
        if let id = record.graphID {
            do {
                try await graph.deleteSubscription(id: id)
                logger.notice("deleted Graph subscription no longer in the configuration", metadata: ["bridge.subscription": "\(record.name)", "bridge.graph_id": "\(id)"])
            } catch let error as GraphError where error.kind == .notFound {
            } catch {
                logger.error("could not delete Graph subscription; it will expire by itself", metadata: ["bridge.subscription": "\(record.name)", "error": "\(error)"])
            }
            directory.remove(subscriptionID: id)
        }
        forgetExpiry(record.name)
        if !keepRecord {
            do {
                try await store.deleteSubscription(name: record.name)
                try await store.setSetting(StoredDeltaLink.key(for: record.name), to: nil)  // its deltaLink, if it had one
                Gauge(label: "graph_bridge_delta_last_query_timestamp_seconds", dimensions: [("subscription", record.name)]).destroy()
            } catch {
                logger.error("could not forget the subscription record", metadata: ["error": "\(error)"])
            }
        }
    }

    private func recordExpiry(_ record: SubscriptionRecord) {
        guard let expiration = record.expiration else { return }
        Gauge(label: "graph_bridge_subscription_expiry_timestamp_seconds", dimensions: [("subscription", record.name)]).record(expiration.timeIntervalSince1970)
    }

    /// When the deltaLink a `resync: delta` subscription follows from was taken (the start of its
    /// last successful delta query); removed with the deltaLink when the subscription leaves the configuration.
    private func recordDeltaQuery(_ name: String, takenAt: Date) {
        Gauge(label: "graph_bridge_delta_last_query_timestamp_seconds", dimensions: [("subscription", name)]).record(takenAt.timeIntervalSince1970)
    }

    /// The subscription is gone (at Graph, or from the configuration): its expiry gauge goes too,
    /// and the status page hears of it.
    private func forgetExpiry(_ name: String) {
        Gauge(label: "graph_bridge_subscription_expiry_timestamp_seconds", dimensions: [("subscription", name)]).destroy()
        activity?.record(.subscription(name: name, change: .removed))
    }

    /// 64 random characters from a URL-safe alphabet (Graph allows 128).
    static func newClientState() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var generator = SystemRandomNumberGenerator()
        return String((0..<64).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// Turns Graph's refusals into what an operator needs to do.
    static func explain(_ error: any Error, declaration: Declaration) -> String {
        guard let error = error as? GraphError else { return "\(error)" }
        switch error.kind {
        case .forbidden:
            return "Graph refused (403) for resource \(declaration.resource): the app lacks the permission for it (e.g. Mail.Read as an application permission, with admin consent) or a subscription quota is reached. Graph says: \(error)"
        case .unauthorized, .authentication:
            return "sign-in to Graph failed: check graph.tenant, graph.clientId and the secret or certificate. \(error)"
        case .badRequest where error.message.lowercased().contains("validation"):
            return "Graph could not validate the notification URL (is server.publicUrl reachable from the internet, answering within 10 s, without authentication in front?). Graph says: \(error)"
        default:
            return "\(error)"
        }
    }
}
