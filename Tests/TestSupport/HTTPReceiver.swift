public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `Tests/Support/http_receiver.py` running on 127.0.0.1 for one test.
///
/// Use ``withHTTPReceiver(_:_:)`` so the process is stopped however the test ends.
public final class HTTPReceiver {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// One request as the receiver recorded it.
    public struct RecordedRequest: Decodable, Sendable {
        public var seq: Int
        public var connection: Int
        public var method: String
        public var path: String
        public var headers: [[String]]
        public var body_b64: String

        public var body: [UInt8] { Array(Data(base64Encoded: body_b64) ?? Data()) }

        public func header(_ name: String) -> String? {
            headers.first { $0.first?.lowercased() == name.lowercased() }?.last
        }
    }

    public let port: Int
    public let recordFile: URL
    private let process: ChildProcess
    private let exit: ProcessExit

    /// `Tests/Support/http_receiver.py`, found from this file's location.
    public static let scriptPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/http_receiver.py").path

    private init(port: Int, recordFile: URL, process: ChildProcess, exit: ProcessExit) {
        self.port = port
        self.recordFile = recordFile
        self.process = process
        self.exit = exit
    }

    /// Starts the receiver and returns once it has printed its port.
    public static func start(arguments: [String] = []) async throws -> HTTPReceiver {
        let recordFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("curlkit-receiver-\(UUID().uuidString).jsonl")
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath, "--record", recordFile.path] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        let exit = ProcessExit(process)
        try process.run()
        do {
            let line = try await readFirstLine(of: stdout.fileHandleForReading, from: "receiver")
            guard line.hasPrefix("PORT "), let port = Int(line.dropFirst(5)) else {
                throw StartError(description: "receiver printed \(line.debugDescription) instead of PORT <n>")
            }
            return HTTPReceiver(port: port, recordFile: recordFile, process: process, exit: exit)
        } catch {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            await exit.wait()
            throw error
        }
    }

    public func url(_ path: String) -> String {
        "http://127.0.0.1:\(port)\(path)"
    }

    /// Every request recorded so far, in arrival order.
    public func recordedRequests() throws -> [RecordedRequest] {
        return try completeLines(of: recordFile).map {
            try JSONDecoder().decode(RecordedRequest.self, from: Data($0.utf8))
        }
    }

    /// Kills the receiver (SIGKILL: it keeps nothing unwritten) and waits for it to exit.
    public func stop() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await exit.wait()
        try? FileManager.default.removeItem(at: recordFile)
    }

    deinit {
        // isRunning turns false once the process is reaped, so this never hits a reused pid.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

}

/// Resumes waiters when the process exits (set up before `run()`).
public final class ProcessExit: Sendable {
    private let state = Mutex<(exited: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init(_ process: ChildProcess) {
        process.terminationHandler = { [self] _ in
            let waiters = state.withLock { state in
                state.exited = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    public func wait() async {
        await withCheckedContinuation { continuation in
            let exited = state.withLock { state in
                if !state.exited { state.waiters.append(continuation) }
                return state.exited
            }
            if exited { continuation.resume() }
        }
    }
}

/// Runs `body` with a fresh receiver and stops it afterwards, also when `body` throws.
public func withHTTPReceiver<T>(
    _ arguments: [String] = [],
    _ body: (HTTPReceiver) async throws -> T
) async throws -> T {
    let receiver = try await HTTPReceiver.start(arguments: arguments)
    do {
        let result = try await body(receiver)
        await receiver.stop()
        return result
    } catch {
        await receiver.stop()
        throw error
    }
}

/// Runs a command to completion and fails unless it exits 0.
public func runCommand(_ arguments: [String]) async throws {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    let exit = ProcessExit(process)
    try process.run()
    await exit.wait()
    guard process.terminationStatus == 0 else {
        throw HTTPReceiver.StartError(description: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
    }
}

/// Runs a command to completion with empty standard input; returns its exit status and its
/// standard output and error together.
public func commandOutput(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let emptyInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/null"))
    let capture = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-output-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: capture.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: capture) }
    let handle = try FileHandle(forWritingTo: capture)
    process.standardInput = emptyInput
    process.standardOutput = handle
    process.standardError = handle
    let exit = ProcessExit(process)
    try process.run()
    await exit.wait()
    try handle.close()
    try emptyInput.close()
    return (process.terminationStatus, (try? String(contentsOf: capture, encoding: .utf8)) ?? "")
}

/// The lines of `file` that are whole: the receiver may be writing the last one (a large record
/// goes out in more than one `write`), and a reader that takes its first part fails to parse it.
public func completeLines(of file: URL) -> [Substring] {
    let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    let whole = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)]
    return whole.split(separator: "\n")
}
