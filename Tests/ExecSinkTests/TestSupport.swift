import SinkAPI
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ExecSink
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

// MARK: Log questions

/// The exec sink's own questions of a captured log.
extension LogCapture {
    /// Waits until `count` deliveries of the event `id` have reached the sink's table (sent to the
    /// plugin, waiting for it to start, or joined to the same event in flight), counting those
    /// that have ended since. False when fewer did within `timeout`.
    func deliveriesRegistered(_ count: Int = 1, id: String, timeout: Duration = .seconds(15)) async -> Bool {
        await wait(for: count, timeout: timeout) { $0.metadata["bridge.event"] == id && $0.message.hasPrefix("exec event ") }.count >= count
    }

    /// Pids of every plugin the sink started.
    var startedPIDs: [pid_t] {
        entries.filter { $0.message == "exec plugin started" }.compactMap { $0.metadata["bridge.pid"].flatMap { pid_t($0) } }
    }

    var stderrLines: [Entry] {
        entries.filter { $0.metadata["bridge.stream"] == "stderr" && $0.level == .info }
    }
}

// MARK: Files

extension TemporaryDirectory {
    /// Writes an executable script.
    @discardableResult
    func script(_ name: String, _ text: String) -> String {
        let path = file(name)
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o755])
        return path
    }
}

enum Paths {
    /// The repository (or scratch package) root, from this file's place in Tests/ExecSinkTests.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let testPlugin = root + "/Tests/Support/plugins/test-plugin.py"
    static let examples = root + "/examples/plugins"
}

// MARK: Events and outcomes

func event(_ subject: String, id: String = EventID.make()) -> BridgeEvent {
    BridgeEvent(
        id: id,
        receivedAt: Date(timeIntervalSince1970: 1_796_000_000.123),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        tenantId: "tenant",
        data: .object([
            "subject": .string(subject),
            "from": .object(["emailAddress": .object(["name": .string("Bob"), "address": .string("bob@contoso.com")])]),
        ])
    )
}

enum Outcome: Equatable, CustomStringConvertible {
    case ok
    case retry(String)
    case drop(String)
    case other(String)

    var message: String {
        switch self {
        case .ok: ""
        case .retry(let text), .drop(let text), .other(let text): text
        }
    }

    var isRetry: Bool { if case .retry = self { true } else { false } }

    var description: String {
        switch self {
        case .ok: "ok"
        case .retry(let text): "retry(\(text))"
        case .drop(let text): "drop(\(text))"
        case .other(let text): "other(\(text))"
        }
    }
}

extension ExecSink {
    func send(_ event: BridgeEvent) async -> Outcome {
        do {
            try await deliver(event, attempt: DeliveryAttempt(number: 1, deliveryID: 1))
            return .ok
        } catch let error as SinkError {
            switch error.disposition {
            case .retry: return .retry(error.message)
            case .permanent: return .drop(error.message)
            }
        } catch {
            return .other("\(error)")
        }
    }

    /// `send`, timed.
    func timedSend(_ event: BridgeEvent) async -> (Outcome, Duration) {
        let start = ContinuousClock.now
        let outcome = await send(event)
        return (outcome, ContinuousClock.now - start)
    }
}

// MARK: Running the sink as a service

extension ExecSink.Supervision {
    /// Short timings so the suite runs fast.
    static var fast: Self {
        var supervision = ExecSink.Supervision()
        supervision.initialRestartDelay = .milliseconds(50)
        supervision.maximumRestartDelay = .milliseconds(400)
        supervision.startWait = .seconds(5)  // python may start slowly on a loaded machine
        supervision.stopGrace = .milliseconds(500)
        return supervision
    }
}

func isAlive(_ pid: pid_t) -> Bool {
    kill(pid, 0) == 0 || errno == EPERM
}

/// An exec sink running in its own `ServiceGroup`, for tests that drive its start and stop.
struct RunningSink {
    let sink: ExecSink
    let log: LogCapture
    let group: ServiceGroup
    let task: Task<Void, any Error>

    /// Starts the group (on `executor` when given; tests hold a ``StallableExecutor`` to starve it).
    static func start(
        command: [String],
        timeout: Duration = .seconds(10),
        environment: [String: String] = [:],
        inheritEnvironment: Bool = false,
        workingDirectory: String? = nil,
        supervision: ExecSink.Supervision = .fast,
        executor: (any TaskExecutor)? = nil
    ) -> RunningSink {
        let log = LogCapture()
        let sink = ExecSink(
            name: "plugin",
            configuration: .init(
                command: command, timeout: timeout, environment: environment, inheritEnvironment: inheritEnvironment,
                workingDirectory: workingDirectory),
            context: SinkContext(logger: log.logger()),
            supervision: supervision
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: sink)],
                logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() }
            ))
        let task = Task(executorPreference: executor) { try await group.run() }
        return RunningSink(sink: sink, log: log, group: group, task: task)
    }

    /// Shuts the group down gracefully and waits for it, at most `limit`: how long it took, or nil
    /// (an issue) when it did not stop in time or failed. Then checks that no plugin is left.
    @discardableResult
    func shutDown(within limit: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation) async -> Duration? {
        let start = ContinuousClock.now
        await group.triggerGracefulShutdown()
        let result = await finished(task, within: limit)
        let elapsed = ContinuousClock.now - start
        expectAllStopped(log, sourceLocation: sourceLocation)
        switch result {
        case .success: return elapsed
        case .failure(let error): Issue.record("the service group failed: \(error)", sourceLocation: sourceLocation)
        case nil: Issue.record("the service group did not stop within \(limit) of a graceful shutdown", sourceLocation: sourceLocation)
        }
        return nil
    }
}

/// Runs an exec sink in a `ServiceGroup` around `body`, then shuts the group down gracefully
/// (also when `body` throws) and checks that every plugin process the sink started is gone.
/// Returns the log for assertions about shutdown.
///
/// `body` runs once the service has made its first start attempt (the plugin started, or could
/// not be started), however long the service takes to get a thread on a loaded machine: the
/// deliveries it sends do not race the service's start against `startWait`. With
/// `waitForStart: false` it runs at once. The group runs on `executor` when one is given. A
/// shutdown that takes longer than `shutdownLimit` is an issue, and the helper stops waiting for
/// it rather than hang the suite.
@discardableResult
func withExecSink(
    command: [String],
    timeout: Duration = .seconds(10),
    environment: [String: String] = [:],
    inheritEnvironment: Bool = false,
    workingDirectory: String? = nil,
    supervision: ExecSink.Supervision = .fast,
    waitForStart: Bool = true,
    executor: (any TaskExecutor)? = nil,
    shutdownLimit: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (ExecSink, LogCapture) async throws -> Void
) async throws -> LogCapture {
    let running = RunningSink.start(
        command: command, timeout: timeout, environment: environment, inheritEnvironment: inheritEnvironment,
        workingDirectory: workingDirectory, supervision: supervision, executor: executor)
    let log = running.log
    if waitForStart, await log.firstStartAttempt(timeout: .seconds(30)) == nil {
        Issue.record("the exec sink made no start attempt within 30 s of its service group starting", sourceLocation: sourceLocation)
    }
    var failure: (any Error)?
    do {
        try await body(running.sink, log)
    } catch {
        failure = error
    }
    await running.shutDown(within: shutdownLimit, sourceLocation: sourceLocation)
    if let failure { throw failure }
    return log
}

extension LogCapture {
    /// The log line of the sink's first attempt to start its plugin ("started" or "could not be started").
    func firstStartAttempt(timeout: Duration = .seconds(30)) async -> Entry? {
        await first(timeout: timeout) { $0.message == "exec plugin started" || $0.message.hasPrefix("exec plugin could not be started") }
    }
}

/// `task`'s result once it ends, or nil when it has not ended within `limit` (it keeps running).
func finished<Success: Sendable, Failure: Error>(_ task: Task<Success, Failure>, within limit: Duration) async -> Result<Success, Failure>? {
    let first = FirstAnswer<Result<Success, Failure>?>()
    return await withCheckedContinuation { continuation in
        first.expect(continuation)
        Task { first.answer(await task.result) }
        Task {
            try? await Task.sleep(for: limit)
            first.answer(nil)
        }
    }
}

/// Resumes one continuation with whichever answer comes first; later answers are ignored.
final class FirstAnswer<Value: Sendable>: Sendable {
    private let waiting = Mutex<CheckedContinuation<Value, Never>?>(nil)

    func expect(_ continuation: CheckedContinuation<Value, Never>) {
        waiting.withLock { $0 = continuation }
    }

    func answer(_ value: Value) {
        waiting.withLock { continuation in
            continuation?.resume(returning: value)
            continuation = nil
        }
    }
}

/// A task executor on one thread of its own that a test can hold: while held, nothing that prefers
/// it runs, as when the cooperative pool is starved by other work. Other tests are not slowed.
final class StallableExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "exec-sink-test.stallable")
    private let gates = Mutex<[DispatchSemaphore]>([])

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }

    /// Jobs enqueued from now on wait until ``release()`` (a job already running finishes first).
    func hold() {
        let gate = DispatchSemaphore(value: 0)
        gates.withLock { $0.append(gate) }
        queue.async { gate.wait() }
    }

    /// Lets the held jobs run.
    func release() {
        let held = gates.withLock { gates in
            defer { gates = [] }
            return gates
        }
        for gate in held { gate.signal() }
    }
}

/// Every plugin the sink started has exited and been reaped; kills any that did not.
func expectAllStopped(_ log: LogCapture, sourceLocation: SourceLocation = #_sourceLocation) {
    for pid in log.startedPIDs where isAlive(pid) {
        Issue.record("plugin process \(pid) is still running after the sink stopped", sourceLocation: sourceLocation)
        kill(pid, SIGKILL)
    }
}

/// The test plugin through `python3` on PATH.
func testPlugin(_ options: String...) -> [String] {
    ["python3", Paths.testPlugin] + options
}
