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

    /// - Parameter sync: the runtime's reader of the shared records (``BridgeRuntime/directorySync``):
    ///   one for the process, so a reload keeps what it admitted; nil on SQLite.
    init(store: any SubscriptionStore, manager: SubscriptionManager?, sync: DirectorySync?, logger: Logger) {
        guard let manager else {
            self.init(lifecycleObserver: nil, upkeep: nil, services: [], sync: nil)
            return
        }
        guard let postgres = store as? PostgresStateStore, let sync else {
            self.init(lifecycleObserver: manager, upkeep: manager, services: [manager], sync: nil)
            return
        }
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
        await cancelWhenGracefulShutdown {
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
///
/// One for the process (``BridgeRuntime``), not one per configuration: a reload hands it the
/// managed names of the new configuration (``manage(_:)``), and it still knows which Graph ids it
/// admitted before, so an id the leader dropped since, or the id of a subscription the new file no
/// longer declares, leaves the directory at the next read. Each generation's service group runs
/// ``run()``; waits are on `clock`.
final class DirectorySync: Service {
    let store: any SubscriptionStore
    let directory: SubscriptionDirectory
    let interval: Duration
    let clock: any Clock<Duration>
    let logger: Logger
    /// At most one on-demand read this often: ids nobody knows cannot make a replica read the
    /// store faster than this (the periodic read goes on regardless).
    let onDemandInterval: Duration = .milliseconds(250)
    /// Time on `clock` since this was made.
    private let elapsed: @Sendable () -> Duration

    private struct State {
        /// The managed subscriptions of the running configuration; receive-only ones are fixed at start.
        var managedNames: Set<String> = []
        /// Graph ids (lowercased) this sync put in the directory: removed when no record of a managed name has them.
        var admitted: Set<String> = []
        var hasRead = false
        /// When the last on-demand read began (``elapsed``).
        var lastOnDemand: Duration?
        /// Reads begun, and the newest one whose result was applied: an older read that ends
        /// after a newer one has nothing to add.
        var started = 0
        var applied = 0
    }

    private let state = Mutex(State())

    init(
        store: any SubscriptionStore, directory: SubscriptionDirectory, managedNames: Set<String> = [], interval: Duration = .seconds(1),
        clock: any Clock<Duration> = ContinuousClock(), logger: Logger
    ) {
        self.store = store
        self.directory = directory
        self.interval = interval
        self.clock = clock
        self.logger = logger
        elapsed = clock.stopwatch()
        state.withLock { $0.managedNames = managedNames }
    }

    /// The managed subscriptions of the configuration that runs from now on (a reload).
    func manage(_ names: Set<String>) {
        state.withLock { $0.managedNames = names }
    }

    /// Whether the records have been read once.
    var hasRead: Bool { state.withLock { $0.hasRead } }

    /// The Graph ids this sync has admitted (lowercased).
    var admitted: Set<String> { state.withLock { $0.admitted } }

    /// Reads the records now (a notification for an id this replica does not know yet: the leader
    /// may have created it since the last read), unless an on-demand read began within
    /// ``onDemandInterval``. Admits and expects; drops nothing (the periodic read does).
    func refreshNow() async {
        let now = elapsed()
        let due = state.withLock { state -> Bool in
            if let last = state.lastOnDemand, now - last < onDemandInterval { return false }
            state.lastOnDemand = now
            return true
        }
        guard due else { return }
        try? await syncOnce(dropping: false)
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    try await self.syncOnce()
                    if failing { self.logger.notice("reading the shared subscription records works again") }
                    failing = false
                } catch {
                    if !failing && !Task.isCancelled {
                        self.logger.warning("cannot read the shared subscription records; trying again every second", metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
                try await self.clock.sleep(for: self.interval)
            }
        }
    }

    /// Reads the records once and makes the directory match them: the Graph id of each record of a
    /// managed name admitted, a record without an id (being created by the leader) expected by its
    /// clientState, and (with `dropping`) every id admitted before that no such record has any
    /// longer removed.
    func syncOnce(dropping: Bool = true) async throws {
        let ticket = state.withLock { state -> Int in
            state.started += 1
            return state.started
        }
        let records = try await store.subscriptionRecords()
        state.withLock { state in
            // A newer read has already made the directory match newer records.
            guard ticket > state.applied else { return }
            state.applied = ticket
            var current: Set<String> = []
            for record in records where record.managed && state.managedNames.contains(record.name) {
                if let id = record.graphID {
                    let entry = SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState)
                    if directory.entry(forSubscriptionID: id) != entry { directory.upsert(entry) }
                    current.insert(id.lowercased())
                } else {
                    // Being created by the leader: its clientState is known, its id not yet.
                    directory.expect(name: record.name, resource: record.resource, clientState: record.clientState)
                }
            }
            if dropping {
                for gone in state.admitted.subtracting(current) { directory.remove(subscriptionID: gone) }
                state.admitted = current
            } else {
                state.admitted.formUnion(current)
            }
            state.hasRead = true
        }
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
    /// What the relay waits on between reads.
    let clock: any Clock<Duration>
    /// The date the lookback counts back from (events carry the wall-clock time they were received).
    let wallClock: @Sendable () -> Date
    let logger: Logger

    init(
        store: PostgresStateStore, observer: any LifecycleObserver, interval: Duration = .seconds(1), lookback: TimeInterval = 300,
        clock: any Clock<Duration> = ContinuousClock(), wallClock: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.store = store
        self.observer = observer
        self.interval = interval
        self.lookback = lookback
        self.clock = clock
        self.wallClock = wallClock
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
            let since = wallClock().addingTimeInterval(-lookback)
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
            try? await clock.sleep(for: interval)
        }
    }
}
