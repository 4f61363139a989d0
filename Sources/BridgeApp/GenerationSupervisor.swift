import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

/// Runs the configuration's ``BridgeGeneration`` in a service group of its own and, on `SIGHUP`,
/// replaces it with the one the file now describes, without a restart:
///
/// 1. the file is loaded and checked as `check` does; an invalid one is logged (`FILE:LINE:COL:
///    message`), and the running configuration stays;
/// 2. keys only a restart applies (`server:` but `publicUrl`, `state:`) are named in a warning and
///    keep their running values; everything else is applied;
/// 3. the new generation is built while the old one runs (a sink that cannot be built keeps the
///    old configuration running);
/// 4. the old one stops gracefully: deliveries in flight get the engine's grace period to finish,
///    what is unfinished stays queued in the store; the intake keeps journaling and answering
///    Graph meanwhile, routing only pauses;
/// 5. removed sinks' queues become dead letters, the new generation starts (its subscription
///    manager reconciles with Graph: creates what was added, deletes what was removed, replaces
///    what changed), and one `configuration reloaded` line says what changed.
///
/// A sink whose keys the reload leaves unchanged keeps its instance (an exec plugin keeps its
/// process); an added or changed one is built anew, and a changed one's old service stopped first.
/// A service in the outer group, so SIGTERM stops the running generation in its own order
/// (manager, engine), then the ``SinkServiceHost`` stops the sinks' services.
///
/// Each outcome is counted in `graph_bridge_config_reloads_total{outcome}`; as Prometheus and
/// Alertmanager do, `graph_bridge_config_last_reload_successful` says whether the last load
/// (the one at start, or the last `SIGHUP`) was applied, and
/// `graph_bridge_config_last_reload_success_timestamp_seconds` when the running configuration was.
final class GenerationSupervisor: Service {
    let runtime: BridgeRuntime
    let options: BridgeRunner.Options
    let logger: Logger
    /// `SIGHUP`.
    let reloadSignals: UnixSignalsSequence
    /// The time of `graph_bridge_config_last_reload_success_timestamp_seconds`.
    let wallClock: @Sendable () -> Date
    private let first: BridgeGeneration

    init(
        first: BridgeGeneration, runtime: BridgeRuntime, reloadSignals: UnixSignalsSequence, options: BridgeRunner.Options,
        wallClock: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.first = first
        self.wallClock = wallClock
        self.runtime = runtime
        self.reloadSignals = reloadSignals
        self.options = options
        self.logger = logger
    }

    private enum Step {
        /// The generation's group ended: the bridge is stopping.
        case stopped
        /// A valid new configuration is built and waits for the running one to stop.
        case replace(Reload)
    }

    /// A new generation, built and not yet running.
    private struct Reload {
        var generation: BridgeGeneration
        var document: ConfigNode
        var changes: ConfigurationChanges
    }

    func run() async throws {
        let requests = Doorbell()
        // The file as it was at start: what the running configuration says, key by key.
        var running = (try? ConfigDocument.load(path: first.configuration.file).root) ?? .mapping([], mark: ConfigMark(line: 0, column: 0))
        let started = running
        Self.recordLastReload(successful: true, at: wallClock())  // the configuration the bridge started with
        try await withThrowingTaskGroup(of: Void.self) { signals in
            signals.addTask {
                for await _ in self.reloadSignals { requests.ring() }
            }
            var generation = first
            var reload: Reload?
            while true {
                if let reload {
                    if Task.isShuttingDownGracefully || Task.isCancelled { break }
                    await activate(reload, previous: generation)
                    generation = reload.generation
                    running = reload.document
                }
                await runtime.current.install(generation)
                let (now, before) = (generation, running)
                let group = ServiceGroup(configuration: .init(services: generation.services.map { .init(service: $0) }, logger: logger))
                reload = try await withThrowingTaskGroup(of: Step.self) { tasks in
                    tasks.addTask {
                        try await group.run()
                        return .stopped
                    }
                    tasks.addTask {
                        try await .replace(self.nextReload(requests: requests, running: before, started: started, current: now))
                    }
                    defer { tasks.cancelAll() }
                    guard case .replace(let reload) = try await tasks.next()! else { return nil }
                    // Routing pauses while the old generation stops; the intake keeps answering.
                    runtime.current.pause()
                    await group.triggerGracefulShutdown()
                    while let step = try await tasks.next() {
                        if case .stopped = step { break }
                    }
                    return reload
                }
                if reload == nil { break }
            }
            signals.cancelAll()
        }
    }

    /// Waits for `SIGHUP` and returns the new generation once a reload brings a valid file whose
    /// parts could all be built; a refused one is logged and the wait goes on.
    private func nextReload(requests: Doorbell, running: ConfigNode, started: ConfigNode, current: BridgeGeneration) async throws -> Reload {
        while true {
            await requests.wait(timeout: nil)
            try Task.checkCancellation()
            guard options.reloadsOnSIGHUP else {
                logger.notice(
                    "SIGHUP ignored: this configuration has no file to read again", metadata: ["bridge.config": "\(current.configuration.file)"])
                continue
            }
            if let reload = await prepare(running: running, started: started, current: current) { return reload }
        }
    }

    /// Reads and checks the file and builds its generation; nil (logged, counted) when it cannot be used.
    private func prepare(running: ConfigNode, started: ConfigNode, current: BridgeGeneration) async -> Reload? {
        let file = current.configuration.file
        logger.info("SIGHUP: reloading the configuration", metadata: ["bridge.config": "\(file)"])
        let document: ConfigDocument
        let configuration: BridgeConfiguration
        do {
            (document, configuration) = try Self.load(path: file)
        } catch {
            for problem in error.errors {
                logger.error("\(problem.description)", metadata: ["bridge.config": "\(file)"])
            }
            logger.error(
                "the configuration file is invalid; the running configuration is kept",
                metadata: [
                    "bridge.config": "\(file)", "bridge.errors": "\(error.errors.count)",
                ])
            count("invalid")
            return nil
        }
        for warning in FileChecks.warnings(in: configuration) {
            logger.warning("\(warning)")
        }
        let restartOnly = ConfigurationChanges.restartOnlyKeys(started: started, new: document.root)
        if !restartOnly.isEmpty {
            logger.warning(
                "these keys changed but need a restart; they keep their running values until then",
                metadata: [
                    "bridge.config": "\(file)", "bridge.restart_needed": "\(restartOnly.joined(separator: ","))",
                ])
        }
        let lanes = configuration.sinks.reduce(0) { $0 + $1.concurrency }
        if lanes + 16 > runtime.hostConnectionCap {
            logger.notice(
                "the sinks' concurrency grew past the HTTP client's per-host connection cap set at start; webhooks on one host may share connections until a restart",
                metadata: [
                    "bridge.cap": "\(runtime.hostConnectionCap)"
                ])
        }
        let changes = ConfigurationChanges(from: running, to: document.root)
        // A sink whose keys did not change keeps its instance (an exec plugin keeps running).
        let keeping = Set(configuration.sinks.map(\.name)).subtracting(changes.sinksAdded + changes.sinksChanged)
        let generation: BridgeGeneration
        do {
            generation = try await BridgeGeneration.make(
                configuration: configuration, runtime: runtime, options: options, keeping: keeping, from: current, logger: logger)
        } catch {
            logger.error(
                "the new configuration could not start; the running configuration is kept",
                metadata: ["bridge.config": "\(file)", "error": "\(error)"])
            count("failed")
            return nil
        }
        return Reload(generation: generation, document: document.root, changes: changes)
    }

    /// Brings the shared state in line with the new generation, between the two, and says what changed.
    private func activate(_ reload: Reload, previous: BridgeGeneration) async {
        do {
            try await reload.generation.activate(runtime: runtime, previous: previous, logger: logger)
        } catch {
            // The store failed: what could not be done now is done at the next reload or start.
            logger.error("preparing the new configuration in the state store failed; it runs anyway", metadata: ["error": "\(error)"])
        }
        var metadata: Logger.Metadata = ["bridge.config": "\(reload.generation.configuration.file)"]
        for part in reload.changes.summary { metadata[part.key] = "\(part.value)" }
        if reload.changes.isEmpty { metadata["bridge.changes"] = "none" }
        logger.notice("configuration reloaded", metadata: metadata)
        count("applied")
    }

    /// Loads the file with the checks `check` makes (``BridgeRunner/loadConfiguration(path:environment:)``:
    /// the YAML and the files it names), and its YAML tree to compare with the running one.
    static func load(path: String) throws(ConfigErrors) -> (ConfigDocument, BridgeConfiguration) {
        let configuration = try BridgeRunner.loadConfiguration(path: path)
        do {
            return (try ConfigDocument.load(path: path), configuration)
        } catch {
            throw ConfigErrors(errors: [error])
        }
    }

    /// Counts a reload by `outcome` and sets the last-reload gauges (applied: 1 and now; else 0).
    private func count(_ outcome: String) {
        Counter(label: "graph_bridge_config_reloads_total", dimensions: [("outcome", outcome)]).increment()
        Self.recordLastReload(successful: outcome == "applied", at: wallClock())
    }

    /// `graph_bridge_config_last_reload_successful` (1 or 0) and, when successful, first
    /// `graph_bridge_config_last_reload_success_timestamp_seconds` (Unix time, seconds): a scrape
    /// that sees the 1 sees its time.
    private static func recordLastReload(successful: Bool, at date: Date) {
        if successful {
            Gauge(label: "graph_bridge_config_last_reload_success_timestamp_seconds").record(date.timeIntervalSince1970)
        }
        Gauge(label: "graph_bridge_config_last_reload_successful").record(successful ? 1 : 0)
    }
}
