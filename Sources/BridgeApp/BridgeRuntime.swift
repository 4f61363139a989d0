import BridgeConfig
import BridgeCore
import BridgeSettings
import BridgeGraph
import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import Logging
import PostgresStore

/// What lives as long as the process, whatever `SIGHUP` reloads: the state store (and its lock),
/// the HTTP client, the subscription directory and the intake that answers Graph, with the
/// doorbell, backlog and listener load it shares with whichever delivery engine runs.
///
/// `server:` and `state:` are read from the configuration the bridge started with, for the whole
/// run: changing them needs a restart (``ConfigurationChanges/restartOnlyKeys(started:new:)``).
final class BridgeRuntime: Sendable {
    /// The configuration the process started with (`server:` and `state:` stay as it says).
    let started: BridgeConfiguration
    let opened: OpenedStore
    let stateLock: StateFileLock?
    /// Where the store is, for messages.
    let statePlace: String
    /// One client for Graph and every HTTP sink.
    let httpClient: CurlClient
    /// Its per-host connection cap, sized at start from the sinks' `concurrency`.
    let hostConnectionCap: Int
    let directory: SubscriptionDirectory
    /// On PostgreSQL (replicas): what keeps the directory in step with the shared subscription
    /// records. One for the process, so that what it admitted under one configuration is dropped
    /// under the next when the records no longer have it; each generation runs it. Nil on SQLite.
    let directorySync: DirectorySync?
    let readiness = ListenerReadiness()
    /// Rung by the intake after each journal commit; every generation's dispatcher waits on it.
    let journalDoorbell = Doorbell()
    let backlog: Backlog
    let listenerLoad = ListenerLoad()
    /// This process among the replicas sharing the store: the intake stamps what it journals with
    /// it, and every generation's engine claims deliveries under it (one lease for the process).
    let replica = ReplicaID.random()
    /// The running generation as the intake, `/healthz` and the status page see it.
    let current = CurrentGeneration()
    /// What the status page and `/events` show live: routing, delivery outcomes, subscription
    /// changes. One for the process: a reload's new engine and manager report to it too.
    let activity = ActivityFeed()
    /// How the last sign-in to Graph went (`/readyz`), whichever generation's client signed in.
    let signIn = SignInStatus()
    /// The sinks' own services (exec plugins), kept across reloads while their sink is unchanged.
    let sinkServices: SinkServiceHost
    let intake: NotificationIntake
    let logger: Logger

    var store: BridgeStateStore { opened.store }

    private init(started: BridgeConfiguration, opened: OpenedStore, stateLock: StateFileLock?, statePlace: String, logger: Logger) {
        self.started = started
        self.opened = opened
        self.stateLock = stateLock
        self.statePlace = statePlace
        self.logger = logger
        // Its per-host connection cap must never bind before the sinks' own `concurrency`: webhooks
        // on one host would otherwise share the cap, and one that hangs would hold up the others
        // there (promise: no sink blocks another).
        let lanes = started.sinks.reduce(0) { $0 + $1.concurrency }
        hostConnectionCap = lanes + 16
        httpClient = CurlClient(configuration: .init(maxHostConnections: hostConnectionCap))
        directory = SubscriptionDirectory(started.receiveOnlyEntries)
        directorySync = opened.store is PostgresStateStore ? DirectorySync(store: opened.store, directory: directory, logger: logger) : nil
        sinkServices = SinkServiceHost(logger: logger)
        backlog = Backlog(limit: started.state.maxQueuedDeliveries)
        intake = NotificationIntake(
            directory: directory, store: opened.store, doorbell: journalDoorbell, lifecycleObserver: current, backlog: backlog, load: listenerLoad,
            replica: replica, directoryRefresher: current,
            // PostgreSQL: a server it cannot reach would hold every request for as long as the
            // connection attempts last; SQLite needs no deadline.
            journalDeadline: started.state.url == nil ? nil : NotificationIntake.remoteStoreJournalDeadline, logger: logger)
    }

    /// Locks and opens the state store `state:` names, and builds what outlives a reload.
    static func open(_ configuration: BridgeConfiguration, logger: Logger) async throws -> BridgeRuntime {
        // One bridge per state file: a second one would route and renew everything twice. On
        // PostgreSQL (state.url) there is no file to lock: replicas share the database (ReplicaRoles).
        let statePlace = configuration.state.url.map { "\($0)" } ?? configuration.state.path
        do {
            let stateLock = configuration.state.url == nil ? try StateFileLock(path: configuration.state.path) : nil
            let opened = try await OpenedStore.open(configuration.state, logger: logger)!
            return BridgeRuntime(started: configuration, opened: opened, stateLock: stateLock, statePlace: statePlace, logger: logger)
        } catch {
            throw StartupError("cannot open the state store \(statePlace): \(error)")
        }
    }

    /// Records the receive-only subscriptions of `configuration` (so `subscriptions` and the status
    /// page list them), forgets the ones that left the file, and makes the directory accept
    /// exactly these (`previous`: the receive-only entries accepted until now).
    func admitReceiveOnly(_ configuration: BridgeConfiguration, previous: [SubscriptionEntry]) async {
        let entries = configuration.receiveOnlyEntries
        let kept = Set(entries.map { $0.id.lowercased() })
        for gone in previous where !kept.contains(gone.id.lowercased()) {
            directory.remove(subscriptionID: gone.id)
        }
        for entry in entries { directory.upsert(entry) }
        let store = self.store
        let logger = self.logger
        // All at once: the group committer gathers them into a few transactions (one fsync each
        // made a start with 1,000 subscriptions take half a second).
        await withTaskGroup(of: Void.self) { group in
            for entry in entries {
                group.addTask {
                    do {
                        try await store.saveSubscription(
                            SubscriptionRecord(
                                name: entry.name, graphID: entry.id, resource: entry.resource ?? "", changeTypes: "", clientState: entry.clientState,
                                notificationURL: "", expiration: nil, renewedAt: nil, managed: false))
                    } catch {
                        logger.warning(
                            "could not record a receive-only subscription in the state file",
                            metadata: ["bridge.subscription": "\(entry.name)", "error": "\(error)"])
                    }
                }
            }
        }
        let names = Set(entries.map(\.name))
        for stale in (try? await store.subscriptionRecords()) ?? [] where !stale.managed && !names.contains(stale.name) {
            try? await store.deleteSubscription(name: stale.name)  // left the file: forget it
        }
    }

    /// A sink removed from the file takes no more deliveries: what waited for it becomes dead
    /// letters under its old name (listed, retried or purged with `dead-letters`), so it no longer
    /// counts toward the backlog limit or keeps its events from being pruned. Returns the count by sink.
    @discardableResult
    func retireRemovedSinks(keeping sinks: [ConfiguredSink]) async throws -> [String: Int] {
        let retired = try await store.retireDeliveries(
            exceptFor: Set(sinks.map(\.name)), error: "the sink was removed from the configuration", at: Date())
        for (sink, count) in retired.sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "a sink was removed from the configuration: its queued deliveries are now dead letters",
                metadata: [
                    "bridge.sink": "\(sink)", "bridge.deliveries": "\(count)",
                ])
        }
        return retired
    }

    /// Closes the HTTP client and the store.
    func shutdown() async {
        await httpClient.shutdown()
        await opened.shutdown()
        withExtendedLifetime(stateLock) {}
    }
}
