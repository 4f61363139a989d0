public import BridgeConfig
public import BridgeCore
import BridgeServer
import BridgeStore
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

    /// Runs the daemon. Returns after a graceful shutdown.
    public static func run(configuration: BridgeConfiguration, logger: Logger) async throws {
        let managed = configuration.subscriptions.filter(\.manage)
        if let first = managed.first {
            throw StartupError(
                "\(configuration.file): subscription '\(first.name)' is managed by the bridge, but this build cannot create Graph subscriptions yet; declare it with manage: false, id and clientState"
            )
        }
        if configuration.server.tls != nil {
            throw StartupError("\(configuration.file): server.tls is not supported by this build yet; terminate TLS in a reverse proxy")
        }
        let registry = metricsRegistry

        let store: SQLiteStateStore
        do {
            store = try SQLiteStateStore(path: configuration.state.path, logger: logger)
        } catch {
            throw StartupError("cannot open the state store \(configuration.state.path): \(error)")
        }

        let httpClient = CurlClient()
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

        let engine = DeliveryEngine(
            store: store,
            router: configuration.router,
            sinks: sinkEntries,
            retention: configuration.state.retention,
            logger: logger
        )
        let directory = SubscriptionDirectory(configuration.receiveOnlyEntries)
        let intake = NotificationIntake(directory: directory, store: store, doorbell: engine.journalDoorbell, logger: logger)
        let server = BridgeServer(
            configuration: .init(host: configuration.server.host, port: configuration.server.port, maxBodyBytes: configuration.server.maxBodyBytes),
            intake: intake,
            health: StoreHealth(store: store, intake: intake),
            metrics: registry,
            logger: logger
        )
        logger.info("starting", metadata: [
            "bridge.config": "\(configuration.file)",
            "bridge.state": "\(configuration.state.path)",
            "bridge.subscriptions": "\(configuration.subscriptions.count)",
            "bridge.sinks": "\(configuration.sinks.map(\.name).joined(separator: ","))",
        ])
        // Services stop in reverse order: the listener first (no new acknowledgements), then the
        // delivery engine (in-flight deliveries finish or stay queued), then the sinks' own services.
        var services: [any Service] = sinkServices
        services.append(engine)
        services.append(server.makeApplication())
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        await httpClient.shutdown()
        logger.info("stopped")
    }
}

/// `/healthz`: the store answers and the last journal write worked.
struct StoreHealth: HealthCheck {
    let store: SQLiteStateStore
    let intake: NotificationIntake

    func problems() async -> [String: String] {
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
