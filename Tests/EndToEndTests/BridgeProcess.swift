import CurlKit
import Foundation
import Synchronization
import TestSupport

/// The real `graph-bridge` executable, run as a child process on loopback for end-to-end tests.
final class BridgeProcess: Sendable {
    /// Where the executable is: `GRAPH_BRIDGE_BINARY`, else next to the test bundle (`swift build` puts both in one folder).
    static let executable: String = {
        if let path = ProcessInfo.processInfo.environment["GRAPH_BRIDGE_BINARY"] { return path }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("graph-bridge").path,
            Bundle.main.bundleURL.appendingPathComponent("graph-bridge").path,
            packageRoot.appendingPathComponent(".build/debug/graph-bridge").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
    }()

    private let process: ChildProcess
    private let buffer = LineBuffer()
    private let outputBuffer = LineBuffer()
    private let stdout = Pipe()

    /// Starts `graph-bridge ARGUMENTS --log-format json` in `directory`.
    init(_ arguments: [String], directory: String, environment: [String: String] = [:]) throws {
        process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = stdout
        process.standardInput = FileHandle.nullDevice
        try process.run()
        stderr.fileHandleForReading.readToEnd(onOwnThread: buffer.consume)
        stdout.fileHandleForReading.readToEnd(onOwnThread: outputBuffer.consume)
    }

    /// The first log line (past or future) containing `text`; nil if the process closed its stderr first.
    func waitForLog(containing text: String) async -> String? { await buffer.waitForLine(containing: text) }

    /// Waits for the public listener's `listening` log line and returns its bound port.
    func port() async throws -> Int { try await port(listener: "public") }

    /// Waits for the admin listener's `listening` log line and returns its bound port (status page,
    /// `/status.json`, `/metrics`, `/healthz`, `/readyz`; configs for tests set `server.admin.listen: 127.0.0.1:0`).
    func adminPort() async throws -> Int { try await port(listener: "admin") }

    /// Waits until the admin listener's `/readyz` answers 200 (every managed subscription exists at
    /// Graph and has not expired, the store is writable, sign-in works) and returns whether it did
    /// within `timeout`: what an operator's probe sees, rather than the wording of a log line. The
    /// configuration needs `server.admin.listen`.
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws -> Bool {
        let readyz = "http://127.0.0.1:\(try await adminPort())/readyz"
        let client = CurlClient()
        let ready = await (try? eventually(timeout: timeout) { (try? await client.execute(HTTPRequest(url: readyz)))?.status == 200 }) ?? false
        await client.shutdown()
        return ready
    }

    /// The port in the `listening` line of `listener` (`public` or `admin`).
    private func port(listener: String) async throws -> Int {
        guard let line = await waitForLog(containing: #""bridge.listener":"\#(listener)""#) else {
            throw ProcessFailure("the bridge exited before its \(listener) listener was listening:\n\(log)")
        }
        guard line.contains("\"message\":\"listening\""), let range = line.range(of: #""bridge.port":"(\d+)""#, options: .regularExpression) else {
            throw ProcessFailure("no port in \(line)")
        }
        return Int(line[range].filter(\.isNumber))!
    }

    var log: String { buffer.text }
    var output: String { outputBuffer.text }

    /// The first standard-output line (past or future) containing `text`.
    func waitForOutput(containing text: String) async -> String? { await outputBuffer.waitForLine(containing: text) }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    var pid: Int32 { process.processIdentifier }

    /// Whether some log line so far satisfies `predicate` (for `eventually`, when one substring is not enough).
    func hasLog(where predicate: (String) -> Bool) -> Bool { buffer.contains(where: predicate) }

    /// Waits for the process to exit and returns its status. One still running after `timeout` is
    /// killed (status 9), so a bridge that does not stop fails its test instead of hanging the run.
    func waitForExit(timeout: Duration = .seconds(60)) async -> Int32 {
        let guardTask = Task { [process] in
            try await Task.sleep(for: timeout)
            kill(process.processIdentifier, SIGKILL)
        }
        defer { guardTask.cancel() }
        // Bounded again: Foundation's exit monitoring has been seen to miss an exit, and then
        // waitUntilExit never returns (status -1 here, and the test fails rather than hangs).
        return await value(within: timeout + .seconds(10)) { [process] in
            await onOwnThread {
                process.waitUntilExit()
                return process.terminationStatus
            }
        } ?? -1
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Standard error of the child, split into lines, with waiters for a line to appear.
final class LineBuffer: Sendable {
    private struct Waiter {
        var text: String
        var continuation: CheckedContinuation<String?, Never>
    }

    private struct State {
        var lines: [String] = []
        var partial = Data()
        var waiters: [Int: Waiter] = [:]
        /// Waits whose time ran out (or whose task was cancelled) before they began.
        var expired: Set<Int> = []
        var nextWaiter = 0
        var closed = false
    }

    private let state = Mutex(State())

    var text: String { state.withLock { $0.lines.joined(separator: "\n") } }

    func contains(where predicate: (String) -> Bool) -> Bool { state.withLock { $0.lines.contains(where: predicate) } }

    func consume(_ data: Data) {
        let ready = state.withLock { state -> [(CheckedContinuation<String?, Never>, String?)] in
            if data.isEmpty {
                state.closed = true
                defer { state.waiters = [:] }
                return state.waiters.values.map { ($0.continuation, nil) }
            }
            state.partial.append(data)
            var ready: [(CheckedContinuation<String?, Never>, String?)] = []
            while let newline = state.partial.firstIndex(of: 0x0A) {
                let line = String(decoding: state.partial[state.partial.startIndex..<newline], as: UTF8.self)
                state.partial.removeSubrange(state.partial.startIndex...newline)
                state.lines.append(line)
                for (key, waiter) in state.waiters where line.contains(waiter.text) {
                    ready.append((waiter.continuation, line))
                    state.waiters[key] = nil
                }
            }
            return ready
        }
        for (continuation, line) in ready { continuation.resume(returning: line) }
    }

    /// The first line (past or future) containing `text`; nil when the stream closed first, when
    /// `timeout` passed, or when the calling task is cancelled. Bounded, so a process that neither
    /// writes the line nor exits fails its test instead of holding up the whole run.
    func waitForLine(containing text: String, timeout: Duration = .seconds(60)) async -> String? {
        let key = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let guardTask = Task { [self] in
            try? await Task.sleep(for: timeout)
            expire(key)
        }
        defer { guardTask.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let found = state.withLock { state -> (Bool, String?) in
                    if let line = state.lines.first(where: { $0.contains(text) }) { return (true, line) }
                    if state.closed || state.expired.contains(key) { return (true, nil) }
                    state.waiters[key] = Waiter(text: text, continuation: continuation)
                    return (false, nil)
                }
                if found.0 { continuation.resume(returning: found.1) }
            }
        } onCancel: {
            expire(key)
        }
    }

    /// Ends the wait `key` with nil now, also if it has not begun.
    private func expire(_ key: Int) {
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state.waiters.removeValue(forKey: key) else {
                state.expired.insert(key)
                return nil
            }
            return waiter
        }
        waiter?.continuation.resume(returning: nil)
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command to completion and returns (status, stdout, stderr): this process's environment,
/// less `removing`, plus `environment`. With `killAfter`, a command still running then is
/// SIGKILLed (status 9): for commands that must end by themselves (a `run` that must refuse). Any
/// command is killed after two minutes, so one that hangs fails its test instead of the whole run.
func runToCompletion(
    _ arguments: [String], directory: String, environment: [String: String] = [:], removing: [String] = [], killAfter: Duration? = .seconds(120)
) async throws -> (Int32, String, String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: BridgeProcess.executable)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var env = ProcessInfo.processInfo.environment.filter { !removing.contains($0.key) }
    env.merge(environment) { _, new in new }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let guardTask = killAfter.map { limit in
        Task {
            try await Task.sleep(for: limit)
            kill(process.processIdentifier, SIGKILL)
        }
    }
    defer { guardTask?.cancel() }
    return await withCheckedContinuation { continuation in
        // Threads of their own: a Dispatch global queue shares its few threads with Swift's tasks.
        Thread {
            // Both at once: a child that fills one pipe while this reads the other would never end.
            nonisolated(unsafe) var stderr = Data()
            let errors = DispatchSemaphore(value: 0)
            Thread {
                stderr = err.fileHandleForReading.readDataToEndOfFile()
                errors.signal()
            }.start()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            errors.wait()
            process.waitUntilExit()
            continuation.resume(returning: (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)))
        }.start()
    }
}

/// The JSON Lines of a file sink (empty when the file does not exist yet).
func jsonLines(_ path: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").map(String.init)
}

/// The `graph:` section of a `bridge.yaml` that signs in with a client secret to the Graph (a
/// simulator) at `authority`, its Graph API at `baseUrl` (default: `authority` + `/v1.0`, as
/// `graph-bridge simulator` serves both); ends with a newline, so the rest of the file follows.
func graphConfigSection(tenant: String, clientId: String, secret: String, authority: String, baseUrl: String? = nil) -> String {
    """
    graph:
      tenant: \(tenant)
      clientId: \(clientId)
      clientSecret: \(secret)
      authorityUrl: \(authority)
      baseUrl: \(baseUrl ?? authority + "/v1.0")

    """
}

/// What `graph-bridge simulator` prints at start: the values a `bridge.yaml` for it needs.
struct SimulatorBanner {
    var authorityURL: String
    var tenant: String
    var clientID: String
    var clientSecret: String

    /// Waits for the whole banner of `simulator` (its last line names the mailboxes).
    init(of simulator: BridgeProcess) async throws {
        guard await simulator.waitForOutput(containing: "mailboxes:") != nil else {
            throw ProcessFailure("the simulator printed no banner: \(simulator.log)")
        }
        func value(_ key: String) throws -> String {
            guard let value = simulator.output.split(separator: "\n").first(where: { $0.contains(key) })?.split(separator: " ").last else {
                throw ProcessFailure("no \(key) in the simulator's banner: \(simulator.output)")
            }
            return String(value)
        }
        authorityURL = try value("authorityUrl:")
        tenant = try value("tenant:")
        clientID = try value("clientId:")
        clientSecret = try value("clientSecret:")
    }

    /// The `graph:` section that signs in to this simulator.
    var graphSection: String {
        graphConfigSection(tenant: tenant, clientId: clientID, secret: clientSecret, authority: authorityURL)
    }
}
