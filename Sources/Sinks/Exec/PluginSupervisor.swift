import SinkAPI
import Foundation
import Logging
import Metrics
import Synchronization

/// What one delivery ends with.
enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    case retry(String)
    case drop(String)
    case cancelled
}

/// Runs the plugin (start, watch, restart with backoff, stop) and matches deliveries to answers.
///
/// Deliveries and the I/O threads meet in ``State`` behind one lock; the supervising task
/// (``supervise()``) waits on a ``Mailbox`` for exits, timers and the stop request, so it never
/// polls and keeps working the same whether it is stopped by a graceful shutdown or a cancellation.
/// Every wait (restart delays, start waits, delivery timeouts, stop graces) is on
/// `supervision.clock`, and so is a child's uptime.
final class PluginSupervisor: Sendable {
    typealias Token = DeliveryTable.Token

    enum Phase: Sendable {
        /// `run()` has not started a child yet.
        case idle
        case running(PluginProcess)
        /// Between a child's exit (or a failed start) and the next start.
        case down(reason: String)
        case stopping
        case stopped
    }

    private struct State {
        var phase: Phase = .idle
        var table = DeliveryTable()
        var continuations: [Token: CheckedContinuation<DeliveryOutcome, Never>] = [:]
        /// The timers (start wait, timeout) of deliveries still waiting: cancelled when they settle.
        var alarms: [Token: [Task<Void, Never>]] = [:]
        var nextToken: Token = 0
        var nextGeneration = 1
        var stopRequested = false
        var started = false
        /// The newest generation whose exit was reported (its exit can beat `start` to the lock).
        var exitedGeneration = 0
    }

    let configuration: ExecSink.Configuration
    let supervision: ExecSink.Supervision
    let logger: Logger
    private let state = Mutex(State())
    private let mailbox = Mailbox()
    /// Time on `supervision.clock` since this was made.
    private let elapsed: @Sendable () -> Duration

    /// `graph_bridge_plugin_restarts_total{sink}`: one per restart after the plugin exited.
    let restarts: Counter

    init(configuration: ExecSink.Configuration, supervision: ExecSink.Supervision, logger: Logger, sinkName: String = "exec") {
        restarts = Counter(label: "graph_bridge_plugin_restarts_total", dimensions: [("sink", sinkName)])
        self.configuration = configuration
        self.supervision = supervision
        self.logger = logger
        self.elapsed = supervision.clock.stopwatch()
    }

    /// Runs `action` once `delay` has passed on the clock, unless the delivery `token` has settled
    /// first: its timers are cancelled then (``resume(_:with:)``), so none outlives it.
    private func after(_ delay: Duration, for token: Token, _ action: @escaping @Sendable () -> Void) {
        let clock = supervision.clock
        let alarm = Task {
            do {
                try await clock.sleep(for: delay)
            } catch {
                return
            }
            action()
        }
        let settled = state.withLock { state -> Bool in
            guard state.continuations[token] != nil else { return true }
            state.alarms[token, default: []].append(alarm)
            return false
        }
        if settled { alarm.cancel() }
    }

    // MARK: Deliveries

    func deliver(id: String, line: [UInt8]) async -> DeliveryOutcome {
        let token = state.withLock { state -> Token in
            state.nextToken += 1
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                register(token, id: id, line: line, continuation: continuation)
            }
        } onCancel: {
            giveUp(token) { _ in .cancelled }
        }
    }

    private func register(_ token: Token, id: String, line: [UInt8], continuation: CheckedContinuation<DeliveryOutcome, Never>) {
        enum Next { case settled(DeliveryOutcome), send(PluginProcess), waitForChild, waitForAnswer }
        let next = state.withLock { state -> Next in
            if state.stopRequested { return .settled(.retry("the exec sink is stopping")) }
            // Checked under the lock: a cancellation after this point finds the registration.
            if Task.isCancelled { return .settled(.cancelled) }
            var running: PluginProcess?
            if case .running(let process) = state.phase { running = process }
            state.continuations[token] = continuation
            switch state.table.register(token, id: id, line: line, runningGeneration: running?.generation) {
            case .send: return .send(running!)
            case .waitForChild, .joined(sent: false): return .waitForChild
            case .joined(sent: true): return .waitForAnswer
            }
        }
        // Logged once the delivery is in the table (so a timer, an answer or a stop can settle it);
        // the tests await these lines instead of polling the table.
        switch next {
        case .settled(let outcome):
            continuation.resume(returning: outcome)
            return
        case .send(let process):
            process.enqueue(id: id, line: line)
            logger.trace("exec event sent to the plugin", metadata: ["bridge.event": "\(id)", "bridge.pid": "\(process.pid)"])
        case .waitForChild:
            after(min(supervision.startWait, configuration.timeout), for: token) { [self] in
                startWaitExpired(token)
            }
            logger.trace("exec event waits for the plugin to start", metadata: ["bridge.event": "\(id)"])
        case .waitForAnswer:
            logger.trace("exec event joins the same event already sent to the plugin", metadata: ["bridge.event": "\(id)"])
        }
        after(configuration.timeout, for: token) { [self] in
            timedOut(token)
        }
    }

    private func startWaitExpired(_ token: Token) {
        let (removed, reason) = state.withLock { state -> (Bool, String) in
            let removed = state.table.removeIfUnsent(token)
            switch state.phase {
            case .down(let reason): return (removed, "the plugin is not running (\(reason))")
            case .idle: return (removed, "the plugin has not been started (the exec sink's service is not running)")
            default: return (removed, "the plugin is not running")
            }
        }
        if removed { resume([token], with: .retry(reason)) }
    }

    private func timedOut(_ token: Token) {
        let timeout = DurationText.text(configuration.timeout)
        giveUp(token) { removal in
            switch removal {
            case .unsent: return .retry("the plugin did not start within \(timeout)")
            case .unread: return .retry("the plugin did not read the event from its stdin within \(timeout) (is it reading stdin?)")
            case .unanswered: return .retry("no answer from the plugin within \(timeout)")
            }
        }
    }

    private enum Abandoned { case unsent, unread, unanswered }

    /// One delivery stops waiting (timeout or cancellation): out of the table, its line withdrawn
    /// from the write queue when no one else waits for it and the child has not started reading it.
    private func giveUp(_ token: Token, outcome: (Abandoned) -> DeliveryOutcome) {
        let (removal, process) = state.withLock { state -> (DeliveryTable.Removal?, PluginProcess?) in
            guard let removal = state.table.remove(token) else { return (nil, nil) }
            if case .running(let process) = state.phase, process.generation == removal.generation {
                return (removal, process)
            }
            return (removal, nil)
        }
        guard let removal else { return }
        var abandoned = Abandoned.unanswered
        if removal.generation == nil {
            abandoned = .unsent
        } else if removal.entryRemoved, let process {
            switch process.withdraw(id: removal.id) {
            case .withdrawn, .partlyWritten: abandoned = .unread
            case .notQueued: break
            }
        }
        resume([token], with: outcome(abandoned))
    }

    private func resume(_ tokens: [Token], with outcome: DeliveryOutcome) {
        let (continuations, alarms) = state.withLock { state in
            (tokens.compactMap { state.continuations.removeValue(forKey: $0) }, tokens.flatMap { state.alarms.removeValue(forKey: $0) ?? [] })
        }
        for alarm in alarms { alarm.cancel() }
        for continuation in continuations { continuation.resume(returning: outcome) }
    }

    // MARK: From the I/O thread

    private func answered(generation: Int, answer: PluginAnswer) -> Bool {
        guard let tokens = state.withLock({ $0.table.answer(id: answer.id, generation: generation) }) else { return false }
        let outcome: DeliveryOutcome
        switch answer.status {
        case .ok: outcome = .delivered
        case .retry: outcome = .retry("the plugin asked to retry: \(answer.error ?? "no reason given")")
        case .drop: outcome = .drop("the plugin dropped the event: \(answer.error ?? "no reason given")")
        case .unrecognized(let status):
            outcome = .retry("the plugin answered status \(status), which is not ok, retry or drop")
        }
        resume(tokens, with: outcome)
        return true
    }

    private func exited(generation: Int, status: ExitStatus) {
        let tokens = state.withLock { state in
            state.exitedGeneration = max(state.exitedGeneration, generation)
            if case .running(let process) = state.phase, process.generation == generation {
                state.phase = state.stopRequested ? .stopping : .down(reason: "it \(status)")
            }
            return state.table.childExited(generation: generation)
        }
        resume(tokens, with: .retry("the plugin \(status) before answering"))
        mailbox.post(.exited(generation: generation, status: status))
    }

    // MARK: Supervision

    /// Asks ``supervise()`` to stop the plugin and return. Safe to call more than once, from anywhere.
    func requestStop() {
        let waiting = state.withLock { state -> [Token] in
            state.stopRequested = true
            // Lines no child has taken will not be written any more; lines already written keep
            // waiting for their answers while the plugin finishes.
            var tokens: [Token] = []
            for (_, entry) in state.table.entries where entry.generation == nil { tokens += entry.waiters }
            for token in tokens { _ = state.table.remove(token) }
            return tokens
        }
        resume(waiting, with: .retry("the exec sink is stopping"))
        mailbox.post(.stop)
    }

    /// Starts the plugin, restarts it when it exits, and stops it when asked. Returns once stopped.
    func supervise() async {
        let alreadyStarted = state.withLock { state -> Bool in
            defer { state.started = true }
            return state.started
        }
        guard !alreadyStarted else {
            logger.error("exec sink: run() called twice; the second call does nothing")
            return
        }
        var backoff = RestartBackoff(
            initial: supervision.initialRestartDelay,
            maximum: supervision.maximumRestartDelay,
            stableAfter: supervision.stableUptime
        )
        loop: while !state.withLock({ $0.stopRequested }) {
            let generation = state.withLock { state -> Int in
                defer { state.nextGeneration += 1 }
                return state.nextGeneration
            }
            let process: PluginProcess
            do {
                process = try start(generation: generation)
            } catch {
                let delay = backoff.delay(afterUptime: nil)
                state.withLock { state in
                    if !state.stopRequested { state.phase = .down(reason: "it could not be started: \(error)") }
                }
                logger.error(
                    "exec plugin could not be started; trying again in \(DurationText.text(delay))",
                    metadata: [
                        "error": "\(error)", "bridge.restart_in": "\(DurationText.text(delay))",
                    ])
                if await sleep(delay) == .stop { break loop }
                continue
            }
            switch await waitForExit(of: process, timeout: nil) {
            case .exited(let status):
                let uptime = elapsed() - process.startedAt
                let delay = backoff.delay(afterUptime: uptime)
                logger.warning(
                    "exec plugin \(status); restarting in \(DurationText.text(delay))",
                    metadata: [
                        "bridge.pid": "\(process.pid)", "bridge.restart_in": "\(DurationText.text(delay))",
                    ])
                if await sleep(delay) == .stop { break loop }
                restarts.increment()
            case .stop, .timeout:
                await stop(process)
                break loop
            }
        }
        let remaining = state.withLock { state -> [Token] in
            state.phase = .stopped
            return state.table.removeAll()
        }
        resume(remaining, with: .retry("the exec sink has stopped"))
        logger.debug("exec sink stopped")
    }

    private func start(generation: Int) throws(SpawnError) -> PluginProcess {
        let callbacks = PluginProcess.Callbacks(
            answer: { [self] generation, answer in answered(generation: generation, answer: answer) },
            exited: { [self] generation, status in exited(generation: generation, status: status) }
        )
        let environment = configuration.childEnvironment(parent: supervision.parentEnvironment())
        let process = try PluginProcess(
            executable: configuration.executable,
            arguments: configuration.arguments,
            environment: environment,
            workingDirectory: configuration.workingDirectory,
            generation: generation,
            limits: .init(
                answerLineLimit: supervision.answerLineLimit,
                stderrLineLimit: supervision.stderrLineLimit,
                stderrLinesPerSecond: supervision.stderrLinesPerSecond,
                stderrBurst: supervision.stderrBurst
            ),
            elapsed: elapsed,
            logger: logger,
            callbacks: callbacks
        )
        logger.info(
            "exec plugin started",
            metadata: [
                "bridge.pid": "\(process.pid)", "bridge.command": "\(configuration.executable)",
            ])
        let lines = state.withLock { state -> [(id: String, line: [UInt8])] in
            // The child may be gone already (its exit was reported first): then it is not running.
            guard state.exitedGeneration < generation else { return [] }
            if state.stopRequested { return [] }
            state.phase = .running(process)
            return state.table.childStarted(generation: generation)
        }
        for (id, line) in lines { process.enqueue(id: id, line: line) }
        return process
    }

    /// How long `stop` waits for the exit after SIGKILL before giving up on the child.
    static let killWait: Duration = .seconds(1)

    /// Closes stdin, waits, SIGTERM, waits, SIGKILL: at most `2 × stopGrace + killWait`.
    private func stop(_ process: PluginProcess) async {
        process.closeStdin()
        if case .exited(let status) = await waitForExit(of: process, timeout: supervision.stopGrace) {
            logger.info("exec plugin stopped: it \(status)", metadata: ["bridge.pid": "\(process.pid)"])
            return
        }
        logger.notice(
            "exec plugin did not exit within \(DurationText.text(supervision.stopGrace)) of its stdin closing; sending SIGTERM",
            metadata: [
                "bridge.pid": "\(process.pid)"
            ])
        process.signal(SIGTERM)
        if case .exited = await waitForExit(of: process, timeout: supervision.stopGrace) { return }
        logger.warning(
            "exec plugin ignored SIGTERM for \(DurationText.text(supervision.stopGrace)); sending SIGKILL",
            metadata: [
                "bridge.pid": "\(process.pid)"
            ])
        process.signal(SIGKILL)
        // SIGKILL cannot be caught or ignored: a child still there after this is stuck in the
        // kernel, and waiting longer would only hold up the bridge's own shutdown.
        if case .exited = await waitForExit(of: process, timeout: Self.killWait) { return }
        logger.error("exec plugin did not exit even after SIGKILL; giving up on it", metadata: ["bridge.pid": "\(process.pid)"])
    }

    private enum Wake: Equatable {
        case exited(ExitStatus)
        case stop
        case timeout
    }

    /// Waits for `process` to exit, for the stop request, or for `timeout`. Stop requests are
    /// ignored while already stopping (timeout given).
    private func waitForExit(of process: PluginProcess, timeout: Duration?) async -> Wake {
        let alarm = timeout.map { mailbox.schedule(after: $0, on: supervision.clock) }
        defer { alarm?.cancel() }
        while true {
            switch await mailbox.next() {
            case .exited(let generation, let status) where generation == process.generation:
                return .exited(status)
            case .stop where timeout == nil:
                return .stop
            case .timer(let id) where id == alarm?.id:
                return .timeout
            default:
                continue
            }
        }
    }

    private enum SleepResult { case elapsed, stop }

    private func sleep(_ delay: Duration) async -> SleepResult {
        if state.withLock({ $0.stopRequested }) { return .stop }
        let alarm = mailbox.schedule(after: delay, on: supervision.clock)
        defer { alarm.cancel() }
        while true {
            switch await mailbox.next() {
            case .stop: return .stop
            case .timer(let id) where id == alarm.id: return .elapsed
            default: continue
            }
        }
    }

    // MARK: For tests

    var currentProcessID: pid_t? {
        state.withLock { state in
            if case .running(let process) = state.phase { return process.pid }
            return nil
        }
    }

    var waiterCount: Int { state.withLock { $0.table.waiterCount } }
}
