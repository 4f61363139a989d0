import BridgeCore
import BridgeGraph
import Foundation
import Logging
import Metrics
import PostgresStore
import ServiceLifecycle
import Synchronization

/// Whether the subscriptions are looked after, for `/healthz` and `/readyz`.
protocol UpkeepReadiness: Sendable {
    var isReady: Bool { get }
}

extension SubscriptionManager: UpkeepReadiness {}

/// What the roles of a replica change about the running bridge: on SQLite the one process does
/// everything, as before; on PostgreSQL (`state.url`) several replicas share the database, and
/// - one of them at a time, the leader (``LeaderLock``), runs the subscription manager and acts
///   on every replica's lifecycle notifications, read back from the shared journal;
/// - every replica reads the subscription records every second into its directory, so a
///   subscription the leader creates is accepted by all of them (``DirectorySync``).
struct ReplicaRoles {
    /// Told about the lifecycle notifications this process journals: the manager on SQLite; none
    /// on PostgreSQL, where the leader reads them from the journal (whichever replica took them).
    let lifecycleObserver: (any LifecycleObserver)?
    /// Whether the subscriptions are looked after (the manager's start, or a follower's first directory read).
    let upkeep: (any UpkeepReadiness)?
    /// The services that replace the manager's in the service group.
    let services: [any Service]
    /// On PostgreSQL: the directory's reader of the shared records (the intake asks it before
    /// dropping a notification for an id it does not know yet).
    let sync: DirectorySync?

    init(store: any SubscriptionStore, manager: SubscriptionManager?, directory: SubscriptionDirectory, managedNames: Set<String>, logger: Logger) {
        guard let manager else {
            self.init(lifecycleObserver: nil, upkeep: nil, services: [], sync: nil)
            return
        }
        guard let postgres = store as? PostgresStateStore else {
            self.init(lifecycleObserver: manager, upkeep: manager, services: [manager], sync: nil)
            return
        }
        let sync = DirectorySync(store: store, directory: directory, managedNames: managedNames, logger: logger)
        let leadership = LeadershipService(
            lock: LeaderLock(location: postgres.location, logger: logger), manager: manager, sync: sync,
            relay: LifecycleRelay(store: postgres, observer: manager, logger: logger))
        self.init(lifecycleObserver: nil, upkeep: leadership, services: [sync, leadership], sync: sync)
    }

    private init(lifecycleObserver: (any LifecycleObserver)?, upkeep: (any UpkeepReadiness)?, services: [any Service], sync: DirectorySync?) {
        self.lifecycleObserver = lifecycleObserver
        self.upkeep = upkeep
        self.services = services
        self.sync = sync
    }
}

/// Runs the subscription manager, and the relay of lifecycle notifications to it, only while this
/// replica holds the leader lock; stops both at once when the lock's connection is lost.
final class LeadershipService: Service, UpkeepReadiness {
    let lock: LeaderLock
    let manager: SubscriptionManager
    let sync: DirectorySync
    let relay: LifecycleRelay
    private let leading = Mutex(false)

    init(lock: LeaderLock, manager: SubscriptionManager, sync: DirectorySync, relay: LifecycleRelay) {
        self.lock = lock
        self.manager = manager
        self.sync = sync
        self.relay = relay
    }

    /// The leader: once its manager has reconciled with Graph; a follower: once it has read the
    /// subscription records (the leader keeps them).
    var isReady: Bool { leading.withLock { $0 } ? manager.isReady : sync.hasRead }

    var isLeading: Bool { leading.withLock { $0 } }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            let gauge = Gauge(label: "graph_bridge_leader")
            gauge.record(0)
            await self.lock.run(changed: { leading in
                self.leading.withLock { $0 = leading }
                gauge.record(leading ? 1 : 0)
            }) {
                await withDiscardingTaskGroup { group in
                    group.addTask { try? await self.manager.run() }
                    group.addTask { await self.relay.run() }
                }
            }
        }
    }
}

/// Keeps the directory of a replica in step with the shared subscription records: what the leader
/// creates, recreates or deletes is accepted (or no longer) here within `interval`.
final class DirectorySync: Service {
    let store: any SubscriptionStore
    let directory: SubscriptionDirectory
    /// The managed subscriptions of the configuration; receive-only ones are fixed at start.
    let managedNames: Set<String>
    let interval: Duration
    let logger: Logger
    private let read = Mutex(false)

    init(store: any SubscriptionStore, directory: SubscriptionDirectory, managedNames: Set<String>, interval: Duration = .seconds(1), logger: Logger)
    {
        self.store = store
        self.directory = directory
        self.managedNames = managedNames
        self.interval = interval
        self.logger = logger
    }

    /// Whether the records have been read once.
    var hasRead: Bool { read.withLock { $0 } }

    /// The last on-demand read (``refreshNow()``).
    private let lastOnDemand = Mutex<ContinuousClock.Instant?>(nil)
    /// At most one on-demand read this often: ids nobody knows cannot make a replica read the
    /// store faster than this (the periodic read goes on regardless).
    let onDemandInterval: Duration = .milliseconds(250)

    /// Reads the records now (a notification for an id this replica does not know yet: the leader
    /// may have created it since the last read), unless an on-demand read ran within
    /// ``onDemandInterval``. Admits and expects; drops nothing (the periodic read does).
    func refreshNow() async {
        let due = lastOnDemand.withLock { last -> Bool in
            let now = ContinuousClock.now
            if let last, now - last < onDemandInterval { return false }
            last = now
            return true
        }
        guard due else { return }
        _ = try? await syncOnce(admitted: [])
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            // Graph ids this loop put in the directory: removed when their record no longer has them.
            var admitted: Set<String> = []
            var failing = false
            while !Task.isCancelled {
                do {
                    admitted = try await self.syncOnce(admitted: admitted)
                    if failing { self.logger.notice("reading the shared subscription records works again") }
                    failing = false
                } catch {
                    if !failing && !Task.isCancelled {
                        self.logger.warning("cannot read the shared subscription records; trying again every second", metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
                try await Task.sleep(for: self.interval)
            }
        }
    }

    /// Reads the records once; returns the Graph ids now admitted.
    func syncOnce(admitted: Set<String>) async throws -> Set<String> {
        var current: Set<String> = []
        for record in try await store.subscriptionRecords() where record.managed && managedNames.contains(record.name) {
            if let id = record.graphID {
                let entry = SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState)
                if directory.entry(forSubscriptionID: id) != entry { directory.upsert(entry) }
                current.insert(id.lowercased())
            } else {
                // Being created by the leader: its clientState is known, its id not yet.
                directory.expect(name: record.name, resource: record.resource, clientState: record.clientState)
            }
        }
        for gone in admitted.subtracting(current) { directory.remove(subscriptionID: gone) }
        read.withLock { $0 = true }
        return current
    }
}

/// The leader's view of lifecycle notifications: every second, those journaled by any replica
/// in the last `lookback` that it has not seen yet go to the subscription manager. A new leader
/// looks back the same way, so what reached the replicas while no one led is acted on too; it
/// skips what its predecessor handled (the setting ``handledKey``, less 10 s for commits that
/// came late: a request handled twice is harmless, the manager checks the Graph id).
final class LifecycleRelay: Sendable {
    let store: PostgresStateStore
    let observer: any LifecycleObserver
    let interval: Duration
    /// How far back a read looks: beyond the 30 s a takeover takes, and beyond clock skew between replicas.
    let lookback: TimeInterval
    let logger: Logger

    init(store: PostgresStateStore, observer: any LifecycleObserver, interval: Duration = .seconds(1), lookback: TimeInterval = 300, logger: Logger) {
        self.store = store
        self.observer = observer
        self.interval = interval
        self.lookback = lookback
        self.logger = logger
    }

    /// The setting that holds when the newest lifecycle notification a leader handled was received (seconds since 1970).
    static let handledKey = "replicas.lifecycleHandledThrough"

    /// Until cancelled.
    func run() async {
        // Event ids handed over, with when they were received (forgotten once out of the window).
        var seen: [String: Date] = [:]
        var failing = false
        let stored = (try? await store.setting(Self.handledKey)).flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
        let handled = stored?.addingTimeInterval(-10)
        var mark = stored ?? .distantPast
        while !Task.isCancelled {
            let since = Date().addingTimeInterval(-lookback)
            do {
                let events = try await store.lifecycleEvents(receivedSince: max(since, handled ?? since)).filter { seen[$0.id] == nil }
                for event in events { seen[event.id] = event.receivedAt }
                if let newest = events.map(\.receivedAt).max() {
                    await observer.lifecycleEventsJournaled(events)
                    if newest > mark {
                        try await store.setSetting(Self.handledKey, to: "\(newest.timeIntervalSince1970)")
                        mark = newest
                    }
                }
                seen = seen.filter { $0.value >= since }
                failing = false
            } catch {
                if !failing && !Task.isCancelled {
                    logger.warning("cannot read lifecycle notifications from the journal; trying again every second", metadata: ["error": "\(error)"])
                }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}
