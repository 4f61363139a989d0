public import BridgeConfig
public import BridgeCore
import BridgeServer
import BridgeGraph
import BridgeStore
import GraphClient
import CurlKit
public import Foundation
public import Logging
import Metrics
public import Prometheus
import ServiceLifecycle
import UnixSignals
import Synchronization

/// Why the bridge could not start (configuration errors print one line each).
public struct StartupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Builds the running bridge from a configuration and runs it until SIGTERM or SIGINT.
public enum BridgeRunner {
    /// Loads and checks a configuration: the same checks for `check` and `run`.
    public static func loadConfiguration(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigErrors) -> BridgeConfiguration {
        try BridgeConfiguration.load(path: path, registry: SinkCatalog.registry, environment: environment)
    }

    /// Bootstraps the metrics backend once per process and returns its registry.
    public static let metricsRegistry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    /// What `demo` changes about an ordinary run.
    public struct Options: Sendable {
        /// The URL Graph reaches the listener at, from the bound port (instead of `server.publicUrl`).
        public var publicURL: (@Sendable (Int) -> String)?
        /// Called with the bound port once the listener accepts connections.
        public var onListening: @Sendable (Int) async -> Void

        public init(publicURL: (@Sendable (Int) -> String)? = nil, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
            self.publicURL = publicURL
            self.onListening = onListening
        }
    }

    /// Runs the daemon. Returns after a graceful shutdown.
    public static func run(configuration: BridgeConfiguration, logger: Logger, options: Options = .init()) async throws {
        for warning in FileChecks.warnings(in: configuration) {
            logger.warning("\(warning)")
        }
        var tls: ServerTLS?
        if let files = configuration.server.tls {
            do {
                tls = try ServerTLS(certificatePath: files.certificate.path, keyPath: files.key.path, logger: logger)
            } catch {
                throw StartupError("server.tls: \(error)")
            }
        }
        let registry = metricsRegistry

        // One bridge per state file: a second one would route and renew everything twice. On
        // PostgreSQL (state.url) there is no file to lock: replicas share the database (ReplicaRoles).
        let stateLock: StateFileLock?
        let opened: OpenedStore
        let statePlace = configuration.state.url.map { "\($0)" } ?? configuration.state.path
        do {
            stateLock = configuration.state.url == nil ? try StateFileLock(path: configuration.state.path) : nil
            opened = try await OpenedStore.open(configuration.state, logger: logger)!
        } catch {
            throw StartupError("cannot open the state store \(statePlace): \(error)")
        }
        defer { withExtendedLifetime(stateLock) {} }
        let store = opened.store
        // One client for Graph and every HTTP sink. Its per-host connection cap must never bind
        // before the sinks' own `concurrency`: webhooks on one host would otherwise share the cap,
        // and one that hangs would hold up the others there (promise: no sink blocks another).
        let lanes = configuration.sinks.reduce(0) { $0 + $1.concurrency }
        let httpClient = CurlClient(configuration: .init(maxHostConnections: lanes + 16))

        var sinkEntries: [DeliveryEngine.SinkEntry] = []
        for sink in configuration.sinks {
            var sinkLogger = logger
            sinkLogger[metadataKey: "bridge.sink"] = "\(sink.name)"
            do {
                sinkEntries.append(.init(configuration: sink, sink: try sink.factory.makeSink(context: SinkContext(logger: sinkLogger, httpClient: httpClient))))
            } catch {
                throw StartupError("sink '\(sink.name)' could not start: \(error)")
            }
        }
        let sinkServices = sinkEntries.compactMap { $0.sink as? any Service }

        let directory = SubscriptionDirectory(configuration.receiveOnlyEntries)
        // Receive-only subscriptions are recorded too, so `subscriptions` and the status page list them.
        // All at once: the group committer gathers them into a few transactions (one fsync each
        // made a start with 1,000 subscriptions take half a second).
        await withTaskGroup(of: Void.self) { group in
            for entry in configuration.receiveOnlyEntries {
                group.addTask {
                    do {
                        try await store.saveSubscription(SubscriptionRecord(
                            name: entry.name, graphID: entry.id, resource: entry.resource ?? "", changeTypes: "", clientState: entry.clientState,
                            notificationURL: "", expiration: nil, renewedAt: nil, managed: false))
                    } catch {
                        logger.warning("could not record a receive-only subscription in the state file", metadata: ["bridge.subscription": "\(entry.name)", "error": "\(error)"])
                    }
                }
            }
        }
        let receiveOnlyNames = Set(configuration.receiveOnlyEntries.map(\.name))
        for stale in (try? await store.subscriptionRecords()) ?? [] where !stale.managed && !receiveOnlyNames.contains(stale.name) {
            try? await store.deleteSubscription(name: stale.name)  // left the file: forget it
        }
        let readiness = ListenerReadiness()

        // Rich notifications: the key pairs Graph encrypts for, and the enricher that checks and decrypts.
        let encryptionKeys = try RichNotificationSetup.keys(configuration)
        var enrichers: [any EventEnricher] = []
        if let rich = try RichNotificationSetup.enricher(keys: encryptionKeys, configuration: configuration, http: httpClient, logger: logger) {
            enrichers.append(rich)
        }

        // Managed subscriptions: the Graph client, the subscription manager and `fetch:` enrichment.
        var manager: SubscriptionManager?
        let managed = configuration.subscriptions.filter(\.manage)
        // Subscriptions removed from the file are deleted at Graph at the next start, also when
        // none is left: the manager runs while the store still knows a managed one.
        let storedManaged: [SubscriptionRecord]
        do {
            storedManaged = try await store.subscriptionRecords().filter(\.managed)
        } catch {
            throw StartupError("cannot read the stored subscriptions from \(statePlace): \(error)")
        }
        if configuration.graph == nil {
            for record in storedManaged {
                logger.warning("a subscription the bridge managed left the configuration with graph:; it cannot be deleted at Graph and expires there by itself", metadata: [
                    "bridge.subscription": "\(record.name)", "bridge.graph_id": "\(record.graphID ?? "-")",
                    "bridge.expires": "\(record.expiration.map { "\($0)" } ?? "-")",
                ])
                try? await store.deleteSubscription(name: record.name)
            }
        }
        if !managed.isEmpty || !storedManaged.isEmpty, let graphSettings = configuration.graph {
            let graph = try GraphSetup.client(settings: graphSettings, store: store, http: httpClient, logger: logger)
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
                    .init(name: $0.name, resource: $0.resource ?? "", changeTypes: $0.changeTypes.map(\.rawValue), expiration: $0.expiration,
                          includeResourceData: $0.includeResourceData,
                          encryption: encryptionKeys[$0.name].map { .init(certificate: $0.certificateBase64, id: $0.id) },
                          resync: $0.resync == .delta)
                },
                graph: graph, store: store, directory: directory, readiness: readiness, publicURL: publicURL, logger: logger
            )
            // Before the listener opens: a notification for a stored subscription is accepted
            // however long the reconcile with Graph takes (Graph replays its backlog at once).
            do {
                try await manager?.admitStoredSubscriptions()
            } catch {
                throw StartupError("cannot read the stored subscriptions from \(statePlace): \(error)")
            }
            let targets = Dictionary(uniqueKeysWithValues: managed.compactMap { declaration in
                declaration.fetch.map { (declaration.name, GraphEnricher.Target(resource: declaration.resource ?? "", select: $0)) }
            })
            // After the rich enricher: `fetch:` leaves an event alone once it has decrypted `data`.
            if !targets.isEmpty { enrichers.append(GraphEnricher(graph: graph, targets: targets, logger: logger)) }
        }
        let enricher: any EventEnricher = switch enrichers.count {
        case 0: NoEnrichment()
        case 1: enrichers[0]
        default: EnricherChain(enrichers)
        }

        // A sink removed from the file takes no more deliveries: what waited for it becomes dead
        // letters under its old name (listed, retried or purged with `dead-letters`), so it no
        // longer counts toward the backlog limit or keeps its events from being pruned.
        do {
            let retired = try await store.retireDeliveries(
                exceptFor: Set(configuration.sinks.map(\.name)), error: "the sink was removed from the configuration", at: Date())
            for (sink, count) in retired.sorted(by: { $0.key < $1.key }) {
                logger.warning("a sink was removed from the configuration: its queued deliveries are now dead letters", metadata: [
                    "bridge.sink": "\(sink)", "bridge.deliveries": "\(count)",
                ])
            }
        } catch {
            throw StartupError("cannot update the deliveries of removed sinks in \(statePlace): \(error)")
        }
        let backlog = Backlog(limit: configuration.state.maxQueuedDeliveries)
        let engine = DeliveryEngine(
            store: store,
            router: configuration.router,
            sinks: sinkEntries,
            enricher: enricher,
            retention: configuration.state.retention,
            backlog: backlog,
            logger: logger
        )
        // Delta resyncs journal their events and ring the dispatcher, like the intake.
        manager?.connectJournal(store, doorbell: engine.journalDoorbell)
        let replicas = ReplicaRoles(store: store, manager: manager, directory: directory, managedNames: Set(managed.map(\.name)), logger: logger)
        let intake = NotificationIntake(
            directory: directory, store: store, doorbell: engine.journalDoorbell, lifecycleObserver: replicas.lifecycleObserver, backlog: backlog, load: engine.listenerLoad,
            replica: engine.replica, logger: logger)
        let settings = configuration.server
        let server = BridgeServer(
            configuration: .init(
                host: settings.host, port: settings.port, maxBodyBytes: settings.maxBodyBytes, tls: tls,
                limits: .init(idleTimeout: settings.idleTimeout, requestTimeout: settings.requestTimeout, maxConnections: settings.maxConnections),
                admin: .init(host: settings.admin.host, port: settings.admin.port, token: settings.admin.token)
            ),
            intake: intake,
            health: StoreHealth(store: store, intake: intake, manager: replicas.upkeep, managedNames: managed.map(\.name)),
            metrics: registry,
            status: StoreStatus(store: store, sinkNames: configuration.sinks.map(\.name)),
            logger: logger
        )
        logger.info("starting", metadata: [
            "bridge.config": "\(configuration.file)",
            "bridge.state": "\(statePlace)",
            "bridge.subscriptions": "\(configuration.subscriptions.count)",
            "bridge.sinks": "\(configuration.sinks.map(\.name).joined(separator: ","))",
        ])
        // Services stop in reverse order: the listener first (no new acknowledgements), then the
        // subscription manager, then the delivery engine (in-flight deliveries finish or stay
        // queued), then the sinks' own services.
        // All sinks' own services in one: they start together and, at shutdown, stop together
        // (one after another, several slow plugins could exceed the 10 s promise).
        var services: [any Service] = sinkServices.isEmpty ? [] : [ConcurrentServices(services: sinkServices)]
        services.append(engine)
        services.append(contentsOf: replicas.services)
        let onListening = options.onListening
        services.append(ListenerService(
            key: "server.listen", host: configuration.server.host, port: configuration.server.port,
            service: try server.makeApplication { port in
                readiness.markListening(port: port)
                await onListening(port)
            }))
        // The admin listener (status page, metrics, health, readiness): last, so at shutdown it stops first; nothing waits on it.
        services.append(ListenerService(
            key: "server.admin.listen", host: configuration.server.admin.host, port: configuration.server.admin.port,
            service: try server.makeAdminApplication()))
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            // A service that could not start (a listener whose port is taken) cancelled the rest.
            await httpClient.shutdown()
            await opened.shutdown()
            throw error
        }
        await httpClient.shutdown()
        await opened.shutdown()
        logger.info("stopped")
    }
}

/// Runs several services as one: started together, and told to shut down together.
struct ConcurrentServices: Service {
    let services: [any Service]

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services {
                group.addTask { try await service.run() }
            }
            try await group.waitForAll()
        }
    }
}

/// The health and readiness endpoints' view of the running bridge.
/// - `/healthz` (admin): the store answers, the last journal write worked, the subscription manager has started.
/// - `/healthz` (public): notifications can be taken (the store answers and the last journal write worked).
/// - `/readyz` (admin): the store takes a write, and every managed subscription has a Graph id
///   confirmed by the subscription manager and has not expired.
struct StoreHealth: HealthCheck {
    let store: BridgeStateStore
    let intake: NotificationIntake
    let manager: (any UpkeepReadiness)?
    /// The managed subscriptions of the configuration.
    let managedNames: [String]

    func problems() async -> [String: String] {
        var problems = await intakeProblems()
        if let manager, !manager.isReady {
            problems["subscriptions"] = "the subscription manager is still starting"
        }
        return problems
    }

    func acceptsNotifications() async -> Bool {
        await intakeProblems().isEmpty
    }

    func readinessProblems() async -> [String: String] {
        var problems: [String: String] = [:]
        do {
            try await store.setSetting("readyz.lastWriteProbe", to: Timestamp.format(Date()))
        } catch {
            problems["store"] = "not writable: \(error)"
        }
        if let failure = intake.lastJournalFailure {
            problems["journal"] = failure
        }
        if let manager, !manager.isReady {
            problems["subscriptions"] = "the subscription manager is still reconciling with Graph"
        } else if !managedNames.isEmpty {
            let records: [SubscriptionRecord]
            do {
                records = try await store.subscriptionRecords()
            } catch {
                problems["store"] = "unreadable: \(error)"
                return problems
            }
            let byName = Dictionary(records.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            let now = Date()
            let failing = managedNames.compactMap { name -> String? in
                guard let record = byName[name], record.graphID != nil else { return "\(name): no subscription at Graph yet" }
                if let expiration = record.expiration, expiration <= now { return "\(name): expired at \(Timestamp.format(expiration))" }
                return nil
            }
            if !failing.isEmpty {
                let shown = failing.prefix(10).joined(separator: "; ")
                problems["subscriptions"] = failing.count > 10 ? shown + "; and \(failing.count - 10) more" : shown
            }
        }
        return problems
    }

    /// What stops a notification from being journaled.
    private func intakeProblems() async -> [String: String] {
        var problems: [String: String] = [:]
        do {
            try await store.ping()
        } catch {
            problems["store"] = "\(error)"
        }
        if let failure = intake.lastJournalFailure {
            problems["journal"] = failure
        }
        return problems
    }
}
