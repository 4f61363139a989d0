import BridgeCore
import CurlKit
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ExecSink

#if canImport(Glibc)
    import Glibc
#endif

// MARK: Log collection

/// Every entry the sink logged, with a way to await one.
final class LogRecorder: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]

        var description: String { "[\(level)] \(message) \(metadata)" }
    }

    private struct Waiter {
        var predicate: @Sendable (Entry) -> Bool
        var needed: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var entries: [Entry] = []
        var waiters: [Int: Waiter] = [:]
        var expired: Set<Int> = []
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    var entries: [Entry] { state.withLock { $0.entries } }

    func append(_ entry: Entry) {
        let resumed = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.append(entry)
            var done: [CheckedContinuation<Void, Never>] = []
            for (key, var waiter) in state.waiters where waiter.predicate(entry) {
                waiter.needed -= 1
                if waiter.needed <= 0 {
                    state.waiters[key] = nil
                    done.append(waiter.continuation)
                } else {
                    state.waiters[key] = waiter
                }
            }
            return done
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Waits until `count` logged entries match (already logged or still to come), at most
    /// `timeout`; returns the matching entries (fewer than `count` when the time ran out).
    @discardableResult
    func wait(for count: Int = 1, timeout: Duration = .seconds(15), where predicate: @escaping @Sendable (Entry) -> Bool) async -> [Entry] {
        let key = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let guardTask = Task {
            try? await Task.sleep(for: timeout)
            let waiter = state.withLock { state -> Waiter? in
                guard let waiter = state.waiters.removeValue(forKey: key) else {
                    state.expired.insert(key)
                    return nil
                }
                return waiter
            }
            waiter?.continuation.resume()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                let needed = count - state.entries.filter(predicate).count
                if needed <= 0 || state.expired.contains(key) { return true }
                state.waiters[key] = Waiter(predicate: predicate, needed: needed, continuation: continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        guardTask.cancel()
        return entries.filter(predicate)
    }

    /// The first matching entry, waiting for it up to `timeout`.
    func first(timeout: Duration = .seconds(15), where predicate: @escaping @Sendable (Entry) -> Bool) async -> Entry? {
        await wait(for: 1, timeout: timeout, where: predicate).first
    }

    /// Pids of every plugin the sink started.
    var startedPIDs: [pid_t] {
        entries.filter { $0.message == "exec plugin started" }.compactMap { $0.metadata["bridge.pid"].flatMap { pid_t($0) } }
    }

    var stderrLines: [Entry] {
        entries.filter { $0.metadata["bridge.stream"] == "stderr" && $0.level == .info }
    }

    func logger() -> Logger {
        var logger = Logger(label: "exec-sink-test") { _ in RecordingLogHandler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }
}

struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        recorder.append(.init(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
    }
}

// MARK: Files

final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        let made = FileManager.default.temporaryDirectory.path + "/exec-sink-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true)
        // The plugin reports its cwd resolved; compare like with like.
        path = URL(fileURLWithPath: made).resolvingSymlinksInPath().path
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes an executable script.
    @discardableResult
    func script(_ name: String, _ text: String) -> String {
        let path = file(name)
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o755])
        return path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Paths {
    /// The repository (or scratch package) root, from this file's place in Tests/ExecSinkTests.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let testPlugin = root + "/Tests/Support/plugins/test-plugin.py"
    static let examples = root + "/examples/plugins"
}

// MARK: Events and outcomes

let sharedHTTPClient = CurlClient()

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

/// Runs an exec sink in a `ServiceGroup` around `body`, then shuts the group down gracefully
/// (also when `body` throws) and checks that every plugin process the sink started is gone.
/// Returns the log for assertions about shutdown.
@discardableResult
func withExecSink(
    command: [String],
    timeout: Duration = .seconds(10),
    environment: [String: String] = [:],
    workingDirectory: String? = nil,
    supervision: ExecSink.Supervision = .fast,
    _ body: (ExecSink, LogRecorder) async throws -> Void
) async throws -> LogRecorder {
    let log = LogRecorder()
    let sink = ExecSink(
        name: "plugin",
        configuration: .init(command: command, timeout: timeout, environment: environment, workingDirectory: workingDirectory),
        context: SinkContext(logger: log.logger(), httpClient: sharedHTTPClient),
        supervision: supervision
    )
    let group = ServiceGroup(
        configuration: .init(
            services: [.init(service: sink)],
            logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() }
        ))
    let running = Task { try await group.run() }
    var failure: (any Error)?
    do {
        try await body(sink, log)
    } catch {
        failure = error
    }
    await group.triggerGracefulShutdown()
    do {
        try await running.value
    } catch {
        Issue.record("the service group failed: \(error)")
    }
    expectAllStopped(log)
    if let failure { throw failure }
    return log
}

/// Every plugin the sink started has exited and been reaped; kills any that did not.
func expectAllStopped(_ log: LogRecorder, sourceLocation: SourceLocation = #_sourceLocation) {
    for pid in log.startedPIDs where isAlive(pid) {
        Issue.record("plugin process \(pid) is still running after the sink stopped", sourceLocation: sourceLocation)
        kill(pid, SIGKILL)
    }
}

/// The test plugin through `python3` on PATH.
func testPlugin(_ options: String...) -> [String] {
    ["python3", Paths.testPlugin] + options
}
