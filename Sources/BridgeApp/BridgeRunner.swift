public import BridgeConfig
import BridgeCore
public import BridgeSettings
import BridgeGraph
import BridgeServer
public import Foundation
public import Logging
import Metrics
public import Prometheus
import ServiceLifecycle
import UnixSignals

/// Why the bridge could not start (configuration errors print one line each).
public struct StartupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Builds the running bridge from a configuration and runs it until SIGTERM or SIGINT.
public enum BridgeRunner {
    /// Loads and checks a configuration: the same checks for `check` and `run` (and every other
    /// command that reads the whole file). Besides the YAML, the key and certificate files it names
    /// must load (``FileChecks``), each problem at its `FILE:LINE:COL`.
    public static func loadConfiguration(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigErrors) -> BridgeConfiguration {
        let configuration = try BridgeConfiguration.load(path: path, registry: SinkCatalog.registry, environment: environment)
        let problems = FileChecks.problems(in: configuration)
        guard problems.isEmpty else { throw ConfigErrors(problems) }
        return configuration
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

        /// Whether `SIGHUP` reads the configuration file again (`demo` has no file: it logs and ignores `SIGHUP`).
        public var reloadsOnSIGHUP: Bool

        public init(
            publicURL: (@Sendable (Int) -> String)? = nil, reloadsOnSIGHUP: Bool = true, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
        ) {
            self.publicURL = publicURL
            self.reloadsOnSIGHUP = reloadsOnSIGHUP
            self.onListening = onListening
        }
    }

    /// Runs the daemon until SIGTERM or SIGINT; `SIGHUP` reloads the configuration file (see
    /// ``GenerationSupervisor``). Returns after a graceful shutdown.
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
        // Trapped before the listener opens, so a reload asked for as soon as the bridge answers is
        // never the default action (which ends the process).
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)

        // What lives as long as the process: the store, the HTTP client, the directory, the intake.
        let runtime = try await BridgeRuntime.open(configuration, logger: logger)
        let generation: BridgeGeneration
        do {
            // What a reload replaces: the sinks, the router, the delivery engine, the subscription manager.
            generation = try await BridgeGeneration.make(configuration: configuration, runtime: runtime, options: options, logger: logger)
            try await generation.activate(runtime: runtime, previous: nil, logger: logger)
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.current.install(generation)

        let settings = configuration.server
        let store = runtime.store
        let server = BridgeServer(
            configuration: .init(
                host: settings.host, port: settings.port, maxBodyBytes: settings.maxBodyBytes, tls: tls,
                limits: .init(idleTimeout: settings.idleTimeout, requestTimeout: settings.requestTimeout, maxConnections: settings.maxConnections),
                admin: .init(host: settings.admin.host, port: settings.admin.port, token: settings.admin.token)
            ),
            intake: runtime.intake,
            health: StoreHealth(store: store, intake: runtime.intake, current: runtime.current, signIn: runtime.signIn),
            metrics: registry,
            status: StoreStatus(store: store, current: runtime.current),
            events: .init(feed: runtime.activity, history: store),
            logger: logger
        )
        logger.info("starting", metadata: [
            "bridge.config": "\(configuration.file)",
            "bridge.state": "\(runtime.statePlace)",
            "bridge.subscriptions": "\(configuration.subscriptions.count)",
            "bridge.sinks": "\(configuration.sinks.map(\.name).joined(separator: ","))",
        ])
        // Services stop in reverse order: the listener first (no new acknowledgements), then the
        // running generation (its subscription manager, then its delivery engine: in-flight
        // deliveries finish or stay queued), then the sinks' own services.
        var services: [any Service] = [
            runtime.sinkServices,
            GenerationSupervisor(first: generation, runtime: runtime, reloadSignals: reloadSignals, options: options, logger: logger),
        ]
        let onListening = options.onListening
        let readiness = runtime.readiness
        services.append(ListenerService(
            key: "server.listen", host: settings.host, port: settings.port,
            service: try server.makeApplication { port in
                readiness.markListening(port: port)
                await onListening(port)
            }))
        // The admin listener (status page, metrics, health, readiness): last, so at shutdown it stops first; nothing waits on it.
        services.append(ListenerService(
            key: "server.admin.listen", host: settings.admin.host, port: settings.admin.port,
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
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
        logger.info("stopped")
    }
}

