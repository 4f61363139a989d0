import BridgeConfig
import BridgeCore
import BridgeSettings
import BridgeGraph
import BridgeStore
import Foundation
import GraphClient
import Logging
import Metrics
import ServiceLifecycle

/// What one configuration builds and a `SIGHUP` replaces: the sinks, the enrichers, the Graph
/// client, the subscription manager and the delivery engine (router, workers, retry settings). It
/// runs on a ``BridgeRuntime``, which outlives it.
///
/// Building one (``make(configuration:runtime:options:keeping:from:logger:)``) changes nothing
/// outside it, so a reload builds the new generation while the old one still runs, and keeps the
/// old one when the build fails. ``activate(runtime:previous:logger:)`` then does what touches
/// shared state, after the old one stopped. A sink whose keys a reload leaves unchanged keeps its
/// instance (and its service: an exec plugin keeps running); the sinks' services run in the
/// runtime's ``SinkServiceHost``.
struct BridgeGeneration: Sendable {
    let configuration: BridgeConfiguration
    let engine: DeliveryEngine
    /// Nil when there is nothing to manage: no managed subscription declared or stored, or no `graph:`.
    let manager: SubscriptionManager?
    /// Who runs the manager and hears lifecycle events: this process (SQLite), or the replica that
    /// holds the leader lock (PostgreSQL).
    let replicas: ReplicaRoles
    /// The managed subscriptions of the configuration.
    let managedNames: [String]
    /// The sinks with their instances, in file order.
    let sinks: [DeliveryEngine.SinkEntry]
    /// The sinks whose instance this generation built (the others it took over from the previous one).
    let builtSinks: Set<String>

    /// In start order; a service group stops them in reverse: the subscription manager, then the
    /// delivery engine (in-flight deliveries finish or stay queued). The sinks' own services run in
    /// the runtime's ``SinkServiceHost``, which stops after.
    var services: [any Service] {
        [engine] + replicas.services
    }

    /// Builds every part of `configuration` that a reload replaces. `server:` and `state:` come from
    /// the runtime (they need a restart); `server.publicUrl` from `configuration`.
    /// - Parameters:
    ///   - keeping: the sinks whose keys did not change: their instances are taken from `previous`.
    ///   - previous: the running generation; nil at start.
    static func make(
        configuration: BridgeConfiguration, runtime: BridgeRuntime, options: BridgeRunner.Options, keeping: Set<String> = [],
        from previous: BridgeGeneration? = nil, logger: Logger
    ) async throws -> BridgeGeneration {
        let store = runtime.store
        let httpClient = runtime.httpClient
        let running = Dictionary((previous?.sinks ?? []).map { ($0.configuration.name, $0.sink) }, uniquingKeysWith: { first, _ in first })
        var sinkEntries: [DeliveryEngine.SinkEntry] = []
        var built: Set<String> = []
        for sink in configuration.sinks {
            if keeping.contains(sink.name), let instance = running[sink.name] {
                sinkEntries.append(.init(configuration: sink, sink: instance))
                continue
            }
            var sinkLogger = logger
            sinkLogger[metadataKey: "bridge.sink"] = "\(sink.name)"
            do {
                sinkEntries.append(
                    .init(configuration: sink, sink: try sink.factory.makeSink(context: SinkContext(logger: sinkLogger, transport: httpClient))))
                built.insert(sink.name)
            } catch {
                throw StartupError("sink '\(sink.name)' could not start: \(error)")
            }
        }

        // Rich notifications: the key pairs Graph encrypts for, and the enricher that checks and decrypts.
        let encryptionKeys = try RichNotificationSetup.keys(configuration)
        var enrichers: [any EventEnricher] = []
        if let rich = try RichNotificationSetup.enricher(keys: encryptionKeys, configuration: configuration, http: httpClient, logger: logger) {
            enrichers.append(rich)
        }

        // Managed subscriptions: the Graph client, the subscription manager and `fetch:` enrichment
        // (of managed and receive-only subscriptions alike). Subscriptions removed from the file are
        // deleted at Graph by the manager's reconcile, also when none is left: the manager runs
        // while the store still knows a managed one.
        var manager: SubscriptionManager?
        let managed = configuration.subscriptions.filter(\.manage)
        let fetching = configuration.subscriptions.filter { $0.fetch != nil }
        let storedManaged: [SubscriptionRecord]
        do {
            storedManaged = try await store.subscriptionRecords().filter(\.managed)
        } catch {
            throw StartupError("cannot read the stored subscriptions from \(runtime.statePlace): \(error)")
        }
        let manages = !managed.isEmpty || !storedManaged.isEmpty
        if manages || !fetching.isEmpty, let graphSettings = configuration.graph {
            let graph = try GraphSetup.client(settings: graphSettings, store: store, http: httpClient, signIn: runtime.signIn, logger: logger)
            if manages {
                let publicURL: @Sendable (Int) -> String
                if let override = options.publicURL {
                    publicURL = override
                } else if let configured = configuration.server.publicUrl {
                    publicURL = { _ in configured }
                } else if managed.isEmpty {
                    publicURL = { _ in "" }  // only deleting what left the file: no notification URL needed
                } else {
                    throw StartupError("\(configuration.file): managed subscriptions need server.publicUrl")
                }
                manager = SubscriptionManager(
                    declarations: managed.map {
                        .init(
                            name: $0.name, resource: $0.resource ?? "", changeTypes: $0.changeTypes.map(\.rawValue), expiration: $0.expiration,
                            includeResourceData: $0.includeResourceData,
                            encryption: encryptionKeys[$0.name].map { .init(certificate: $0.certificateBase64, id: $0.id) },
                            resync: $0.resync == .delta)
                    },
                    graph: graph, store: store, directory: runtime.directory, readiness: runtime.readiness, publicURL: publicURL, logger: logger,
                    activity: runtime.activity
                )
            }
            // A receive-only subscription's resource is the one it was created with (check
            // requires it with fetch:): items are read only inside it, as for managed ones.
            let targets = Dictionary(
                uniqueKeysWithValues: fetching.compactMap { declaration in
                    declaration.fetch.map { (declaration.name, GraphEnricher.Target(resource: declaration.resource ?? "", select: $0)) }
                })
            // After the rich enricher: `fetch:` leaves an event alone once it has decrypted `data`.
            if !targets.isEmpty { enrichers.append(GraphEnricher(graph: graph, targets: targets, logger: logger)) }
        }
        let enricher: any EventEnricher =
            switch enrichers.count {
            case 0: NoEnrichment()
            case 1: enrichers[0]
            default: EnricherChain(enrichers)
            }

        let engine = DeliveryEngine(
            store: store,
            router: configuration.router,
            sinks: sinkEntries,
            enricher: enricher,
            retention: runtime.started.state.retention,
            backlog: runtime.backlog,
            listenerLoad: runtime.listenerLoad,
            journalDoorbell: runtime.journalDoorbell,
            replica: runtime.replica,
            lease: runtime.started.state.lease,
            logger: logger,
            activity: runtime.activity
        )
        // Delta resyncs journal their events and ring the dispatcher, like the intake.
        manager?.connectJournal(store, doorbell: engine.journalDoorbell)
        let replicas = ReplicaRoles(store: store, manager: manager, sync: runtime.directorySync, logger: logger)
        return BridgeGeneration(
            configuration: configuration, engine: engine, manager: manager, replicas: replicas, managedNames: managed.map(\.name), sinks: sinkEntries,
            builtSinks: built)
    }

    /// Makes the shared state match this configuration, before it runs (and, at a reload, after the
    /// previous generation stopped): the services of removed and rebuilt sinks stopped and those of
    /// new instances started, receive-only subscriptions in the directory and the store, stored
    /// managed subscriptions admitted, removed sinks' queues turned into dead letters.
    /// - Parameter previous: the generation that ran until now; nil at start.
    func activate(runtime: BridgeRuntime, previous generation: BridgeGeneration?, logger: Logger) async throws {
        let store = runtime.store
        let previous = generation?.configuration
        let takenOver = Set(sinks.map(\.configuration.name)).subtracting(builtSinks)
        for entry in generation?.sinks ?? [] where !takenOver.contains(entry.configuration.name) && entry.sink is any Service {
            await runtime.sinkServices.stop(entry.configuration.name)
        }
        for entry in sinks where builtSinks.contains(entry.configuration.name) {
            if let service = entry.sink as? any Service { runtime.sinkServices.start(entry.configuration.name, service) }
        }
        await runtime.admitReceiveOnly(configuration, previous: previous?.receiveOnlyEntries ?? [])
        // PostgreSQL: the process's directory sync follows this configuration's managed subscriptions
        // from now on; ids it admitted for the previous one are dropped at its next read when no record has them.
        runtime.directorySync?.manage(Set(managedNames))
        if configuration.graph == nil {
            for record in (try? await store.subscriptionRecords().filter(\.managed)) ?? [] {
                logger.warning(
                    "a subscription the bridge managed left the configuration with graph:; it cannot be deleted at Graph and expires there by itself",
                    metadata: [
                        "bridge.subscription": "\(record.name)", "bridge.graph_id": "\(record.graphID ?? "-")",
                        "bridge.expires": "\(record.expiration.map { "\($0)" } ?? "-")",
                    ])
                try? await store.deleteSubscription(name: record.name)
            }
        }
        // Before the listener opens: a notification for a stored subscription is accepted
        // however long the reconcile with Graph takes (Graph replays its backlog at once).
        do {
            try await manager?.admitStoredSubscriptions()
        } catch {
            throw StartupError("cannot read the stored subscriptions from \(runtime.statePlace): \(error)")
        }
        do {
            try await runtime.retireRemovedSinks(keeping: configuration.sinks)
        } catch {
            throw StartupError("cannot update the deliveries of removed sinks in \(runtime.statePlace): \(error)")
        }
        // The engine keeps the queue gauges of its own sinks only: a removed sink's would stay at
        // their last values. Its queue is empty now, and its dead letters are what the store holds.
        let kept = Set(configuration.sinks.map(\.name))
        let removed = (previous?.sinks ?? []).map(\.name).filter { !kept.contains($0) }
        if !removed.isEmpty, let depths = try? await store.queueDepths() {
            for name in removed {
                Gauge(label: "graph_bridge_queue_depth", dimensions: [("sink", name)]).record(0)
                Gauge(label: "graph_bridge_dead_letters", dimensions: [("sink", name)]).record(depths[name]?.dead ?? 0)
            }
        }
    }
}
