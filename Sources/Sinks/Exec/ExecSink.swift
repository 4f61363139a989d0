public import SinkAPI
import Foundation
import Logging
public import ServiceLifecycle

/// `type: exec`: hands each event to a long-running plugin program over its stdin and stdout
/// (SPEC section 7; the protocol is in `docs/plugins.md`).
///
/// The bridge starts `command` once and keeps it running. Each event goes to the child's stdin
/// as one line (the event JSON of SPEC section 6); the child answers one line per event on
/// stdout, `{"id": "<event id>", "status": "ok" | "retry" | "drop", "error": "..."}`, in any
/// order. `ok` is a success, `retry` (and no answer within `timeout`) is retried like any
/// failure, `drop` makes a dead letter. The sink is a `Service`: `run()` starts the child,
/// restarts it with backoff when it exits, sends its stderr to the log, and on shutdown closes
/// its stdin, then sends SIGTERM, then SIGKILL.
///
/// ## Configuration keys
/// - `command` (required): the program and its arguments, as a list (`[./plugins/my-sink, --flag]`).
///   A program with a `/` in it is relative to the config's folder; a bare name is looked up on
///   `PATH`. It must exist and be executable when the config is loaded.
/// - `timeout`: how long an event may wait for its answer (including waiting for the plugin to
///   read it); past it the delivery is retried. Default `30s`.
/// - `environment`: a map of variables for the child, on top of `PATH`, `HOME`, `LANG` and `TZ`
///   taken from the bridge's environment when set there (nothing else of it: no secrets).
/// - `inheritEnvironment`: `true` starts the child from the bridge's whole environment instead
///   (then `environment` on top). Default `false`.
/// - `workingDirectory`: the child's working directory; relative to the config's folder, and
///   the config's folder when not given. It must exist.
/// - `concurrency` (read by the core): events in flight at once; default 8.
public struct ExecSink: Sink, Service {
    public static let typeName = "exec"
    /// Answers are matched by id, so several events can be in flight at once.
    public static let defaultConcurrency = 8

    let supervisor: PluginSupervisor

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.init(name: name, configuration: configuration, context: context, supervision: Supervision())
    }

    /// Like ``init(name:configuration:context:)`` with the supervision timings given.
    public init(name: String, configuration: Configuration, context: SinkContext, supervision: Supervision) {
        var logger = context.logger
        logger[metadataKey: "bridge.sink"] = "\(name)"
        self.supervisor = PluginSupervisor(configuration: configuration, supervision: supervision, logger: logger, sinkName: name)
    }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        var line = event.encoded()
        line.append(0x0A)
        switch await supervisor.deliver(id: event.id, line: line) {
        case .delivered: return
        case .retry(let message): throw SinkError.retryable(message)
        case .drop(let message): throw SinkError.permanent(message)
        case .cancelled: throw CancellationError()
        }
    }

    /// Runs the plugin until a graceful shutdown or cancellation, then stops it (stdin closed,
    /// `stopGrace`, SIGTERM, `stopGrace`, SIGKILL) and returns: at most `2 × stopGrace` and 1 s
    /// after the request, whatever the plugin does. Called in a task that is already cancelled or
    /// shutting down, it starts no plugin and returns at once; deliveries waiting for a start
    /// then fail (retryable) at once, and those that arrive later too.
    public func run() async throws {
        let supervisor = self.supervisor
        await withTaskCancellationOrGracefulShutdownHandler {
            await supervisor.supervise()
        } onCancelOrGracefulShutdown: {
            supervisor.requestStop()
        }
    }
}

extension ExecSink {
    /// How the plugin is supervised. The defaults are the bridge's; tests shorten them.
    public struct Supervision: Sendable {
        /// The first restart delay after an exit or a failed start; it doubles per restart...
        public var initialRestartDelay: Duration = .milliseconds(100)
        /// ...up to this.
        public var maximumRestartDelay: Duration = .seconds(30)
        /// A child that stayed up this long resets the delay to ``initialRestartDelay``.
        public var stableUptime: Duration = .seconds(10)
        /// How long a delivery that arrives while no child runs waits for one (capped by `timeout`).
        public var startWait: Duration = .seconds(2)
        /// At shutdown: how long after closing stdin before SIGTERM, and after SIGTERM before SIGKILL.
        public var stopGrace: Duration = .seconds(2)
        /// Longer stderr lines are cut here (and marked `…[truncated]`).
        public var stderrLineLimit = 4096
        /// stderr lines logged per second at most (after a burst of ``stderrBurst``); the rest are counted and dropped.
        public var stderrLinesPerSecond = 100
        public var stderrBurst = 200
        /// Longer stdout lines are not answers and are ignored.
        public var answerLineLimit = 64 * 1024
        /// What every wait above (restart delays, the start wait, a delivery's `timeout`, the stop
        /// graces) sleeps on, and what a child's uptime and the stderr rate are measured with: the
        /// system's clock in the bridge; tests move their own.
        public var clock: any Clock<Duration> = ContinuousClock()
        /// The bridge's environment, which a child's is made from (see `childEnvironment`): the
        /// process's own. Tests pass one instead of calling `setenv`, which races other threads
        /// that read the environment (a `Process` being spawned copies it).
        public var parentEnvironment: @Sendable () -> [String: String] = { ProcessInfo.processInfo.environment }

        public init() {}
    }
}
