public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `Tests/Support/smtp_server.py` (aiosmtpd) running on 127.0.0.1 for one test.
///
/// Use ``withSMTPServer(_:_:)`` so the process is stopped however the test ends. The script needs
/// Debian's `python3-aiosmtpd` and runs with `/usr/bin/python3` (a pyenv `python3` on PATH
/// doesn't see Debian's packages); set `GRAPH_BRIDGE_SMTP_PYTHON` to use another interpreter.
public final class SMTPServer {
    /// One accepted message as the server recorded it.
    public struct Message: Decodable, Sendable {
        public var seq: Int
        public var mail_from: String
        public var rcpt_tos: [String]
        /// Whether the session was in TLS (STARTTLS or implicit) when the message arrived.
        public var tls: Bool
        public var authenticated: Bool
        public var auth_user: String?
        public var data_b64: String
        /// Python's `email` package's reading of the message.
        public var parsed: ParsedMessage

        /// The DATA content after dot-unstuffing, without the final `CRLF.CRLF`.
        public var data: [UInt8] { Array(Data(base64Encoded: data_b64) ?? Data()) }
    }

    /// The message as Python's `email` package (policy.default) reads it.
    public struct ParsedMessage: Decodable, Sendable {
        public var error: String?
        /// Header fields in order; values decoded (RFC 2047) and unfolded.
        public var headers: [[String]]?
        /// Header fields in order as written (still encoded and folded).
        public var raw_headers: [[String]]?
        public var content_type: String?
        public var defects: [String]?
        public var parts: [Part]?
        /// The longest line in bytes, CRLF excluded.
        public var max_line_length: Int?
        /// Whether some LF came without a CR before it.
        public var bare_lf: Bool?

        public struct Part: Decodable, Sendable {
            public var content_type: String
            public var charset: String?
            public var cte: String?
            public var defects: [String]
            /// The decoded body text.
            public var content: String?
        }

        /// Every decoded value of the header `name` (case-insensitive).
        public func values(_ name: String) -> [String] {
            (headers ?? []).filter { $0.first?.lowercased() == name.lowercased() }.compactMap { $0.last }
        }

        /// The first decoded value of the header `name` (case-insensitive).
        public func header(_ name: String) -> String? { values(name).first }

        /// The first raw (encoded, folded) value of the header `name`.
        public func rawHeader(_ name: String) -> String? {
            (raw_headers ?? []).first { $0.first?.lowercased() == name.lowercased() }?.last
        }
    }

    /// One `MAIL FROM` the server saw, whatever became of it.
    public struct MailCommand: Decodable, Sendable {
        public var address: String
        public var tls: Bool
        public var authenticated: Bool
    }

    public let port: Int
    public let recordFile: URL
    private let process: ChildProcess
    private let exit: ProcessExit

    /// `Tests/Support/smtp_server.py`, found from this file's location.
    public static let scriptPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/smtp_server.py").path

    /// The interpreter that has aiosmtpd.
    public static var python: String {
        ProcessInfo.processInfo.environment["GRAPH_BRIDGE_SMTP_PYTHON"] ?? "/usr/bin/python3"
    }

    private init(port: Int, recordFile: URL, process: ChildProcess, exit: ProcessExit) {
        self.port = port
        self.recordFile = recordFile
        self.process = process
        self.exit = exit
    }

    /// Starts the server with the script's options (`--starttls CERT KEY`, `--auth USER:PASS`,
    /// `--reply rcpt:450`, ...) and returns once it has printed its port.
    public static func start(arguments: [String] = []) async throws -> SMTPServer {
        let recordFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("smtp-server-\(UUID().uuidString).jsonl")
        let errorFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("smtp-server-\(UUID().uuidString).stderr")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [scriptPath, "--record", recordFile.path] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: errorFile)
        let exit = ProcessExit(process)
        try process.run()
        do {
            let line = try await readFirstLine(of: stdout.fileHandleForReading, from: "smtp_server.py")
            guard line.hasPrefix("PORT "), let port = Int(line.dropFirst(5)) else {
                throw HTTPReceiver.StartError(description: "smtp_server.py printed \(line.debugDescription) instead of PORT <n>")
            }
            return SMTPServer(port: port, recordFile: recordFile, process: process, exit: exit)
        } catch {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            await exit.wait()
            let stderr = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: recordFile)
            throw HTTPReceiver.StartError(description: "\(error) \(stderr.suffix(2000))")
        }
    }

    /// `smtp://127.0.0.1:<port>` (or `smtps://` with `scheme: "smtps"`).
    public func url(scheme: String = "smtp") -> String {
        "\(scheme)://127.0.0.1:\(port)"
    }

    /// Every message accepted so far, in arrival order.
    public func messages() throws -> [Message] {
        try records(kind: "message")
    }

    /// Every `MAIL FROM` the server saw so far, accepted or not.
    public func mailCommands() throws -> [MailCommand] {
        try records(kind: "mail")
    }

    private func records<T: Decodable>(kind: String) throws -> [T] {
        return try completeLines(of: recordFile).compactMap { line in
            let data = Data(line.utf8)
            guard try JSONDecoder().decode(RecordKind.self, from: data).kind == kind else { return nil }
            return try JSONDecoder().decode(T.self, from: data)
        }
    }

    /// Kills the server (SIGKILL: it keeps nothing unwritten) and waits for it to exit.
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

private struct RecordKind: Decodable {
    var kind: String
}

/// Runs `body` with a fresh SMTP server and stops it afterwards, also when `body` throws.
public func withSMTPServer<T>(
    _ arguments: [String] = [],
    _ body: (SMTPServer) async throws -> T
) async throws -> T {
    let server = try await SMTPServer.start(arguments: arguments)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
