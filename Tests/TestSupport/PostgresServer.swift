import Foundation
import Synchronization

/// A real PostgreSQL server for the tests of one test process: `initdb` in a temporary folder,
/// then `pg_ctl start`, listening only on a Unix socket in that private folder (no TCP port, so
/// nothing to race for). Started on first use, stopped when the process exits. Each test asks
/// for a database of its own (`createDatabase()`).
///
/// PostgreSQL refuses to run as root: then the server runs as the `postgres` user (`runuser -u
/// postgres --`) in a folder that user owns. The binaries come from `GRAPH_BRIDGE_PG_BIN` or
/// else the Debian location of PostgreSQL 15 (`/usr/lib/postgresql/15/bin`, package `postgresql-15`).
public final class PostgresServer: Sendable {
    /// The folder of the Unix socket (also the `host=` of a `state.url`).
    public let socketDirectory: String
    /// The socket's port number (it names the socket file; nothing listens on TCP).
    public let port: Int
    /// The superuser `initdb` made; it logs in without a password over the socket (trust).
    public let user = "graph_bridge"
    private let binDirectory: String
    private let dataDirectory: String
    private let folder: String
    private let runAs: String?
    private let databases = Atomic<Int>(0)

    /// Why the server is not available: the binaries are missing (skip) or it failed to start.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The start of the process's server: begun by the first caller, awaited by every caller.
    private static let starting = Mutex<Task<Result<PostgresServer, Unavailable>, Never>?>(nil)
    /// The server once started, for the exit handler.
    private static let started = Mutex<PostgresServer?>(nil)

    /// The process's server, started on the first call; nil when the PostgreSQL binaries are
    /// missing (the reason is in `unavailableReason`). Throws when they are there but fail.
    ///
    /// The start (`initdb`, `pg_ctl start`: seconds, half a minute on a busy machine) and every
    /// other tool this type runs wait on a thread of their own, never on the threads Swift's tasks
    /// run on: a parallel run has two of them on this machine, and tests that blocked them while a
    /// server started stalled every other test meanwhile.
    public static func shared() async throws -> PostgresServer? {
        let task = starting.withLock { starting in
            if let starting { return starting }
            let task = Task {
                await offPool { () -> Result<PostgresServer, Unavailable> in
                    do {
                        reclaimAbandoned()
                        let server = try PostgresServer()
                        started.withLock { $0 = server }
                        atexit { PostgresServer.stopShared() }
                        return .success(server)
                    } catch let error as Unavailable {
                        return .failure(error)
                    } catch {
                        return .failure(Unavailable(description: "\(error)"))
                    }
                }
            }
            starting = task
            return task
        }
        switch await task.value {
        case .success(let server): return server
        case .failure(let error):
            if binaryDirectory() == nil { return nil }
            throw error
        }
    }

    /// Stops the servers and removes the folders that test processes no longer running left in
    /// `/tmp` (a test process that crashed or was killed never ran its exit handler): each folder
    /// names its owner in `owner.pid`. A folder without one, or whose owner runs, is left alone.
    private static func reclaimAbandoned() {
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("gb-pg-") }.map { "/tmp/" + $0 }
        for folder in folders {
            guard let text = try? String(contentsOfFile: folder + "/owner.pid", encoding: .utf8), let owner = pid_t(text) else { continue }
            guard kill(owner, 0) != 0 && errno == ESRCH else { continue }
            // The server's postmaster.pid starts with its process id; SIGQUIT is an immediate
            // shutdown. Its files are removed once it has gone (it writes while it stops).
            if let postmaster = try? String(contentsOfFile: folder + "/data/postmaster.pid", encoding: .utf8),
                let line = postmaster.split(separator: "\n").first, let pid = pid_t(line)
            {
                kill(pid, SIGQUIT)
                waitForExit(of: pid, milliseconds: 10_000)
            }
            // owner.pid last: a removal that fails halfway is tried again by the next run.
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            for entry in entries where entry != "owner.pid" { try? FileManager.default.removeItem(atPath: folder + "/" + entry) }
            if (try? FileManager.default.contentsOfDirectory(atPath: folder)) == ["owner.pid"] {
                try? FileManager.default.removeItem(atPath: folder)
            }
        }
    }

    /// Writes this process's id into `folder`, for ``reclaimAbandoned()`` of a later run.
    private static func markOwned(_ folder: String) throws {
        try "\(getpid())".write(toFile: folder + "/owner.pid", atomically: true, encoding: .utf8)
    }

    /// Runs `body` on a thread of its own and returns its result. Not on a Dispatch global queue:
    /// on Linux those share their few threads (two here) with Swift's tasks, and a blocked work
    /// item (an `initdb` of half a minute, others waiting for it) stalled every test.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await onOwnThread(body)
    }

    /// As ``offPool(_:)``, for a body that throws.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await offPool { Result { try body() } }.get()
    }

    /// Whether the PostgreSQL binaries are there (then `shared()` starts a server or throws).
    public static var binariesPresent: Bool { binaryDirectory() != nil }

    /// Why `shared()` returns nil, for the skip message.
    public static var unavailableReason: String {
        "PostgreSQL tests skipped: no initdb/pg_ctl in \(candidates.joined(separator: " or ")) (install postgresql-15, or set GRAPH_BRIDGE_PG_BIN)"
    }

    private static var candidates: [String] {
        // GRAPH_BRIDGE_PG_BIN, when set, is the only place looked at.
        ProcessInfo.processInfo.environment["GRAPH_BRIDGE_PG_BIN"].map { [$0] } ?? ["/usr/lib/postgresql/15/bin"]
    }

    private static func binaryDirectory() -> String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") && FileManager.default.isExecutableFile(atPath: $0 + "/pg_ctl") }
    }

    /// Listening on TCP too (127.0.0.1:`port`) with TLS: the server's certificate and key files.
    private let tls: (certificate: String, key: String)?

    private init(tls: (certificate: String, key: String)? = nil) throws {
        guard let bin = Self.binaryDirectory() else { throw Unavailable(description: Self.unavailableReason) }
        binDirectory = bin
        runAs = getuid() == 0 ? "postgres" : nil
        // Short: a Unix socket path has room for about 100 bytes.
        folder = "/tmp/gb-pg-\(UUID().uuidString.prefix(8))"
        dataDirectory = folder + "/data"
        socketDirectory = folder + "/socket"
        port = tls == nil ? 5432 : try reservedLoopbackPort()
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Self.markOwned(folder)
        if let runAs {
            for path in [folder, socketDirectory] {
                try FileManager.default.setAttributes([.ownerAccountName: runAs], ofItemAtPath: path)
            }
        }
        if let tls {
            // PostgreSQL wants its key file owned by the server's user and private.
            let certificate = folder + "/server.crt", key = folder + "/server.key"
            try FileManager.default.copyItem(atPath: tls.certificate, toPath: certificate)
            try FileManager.default.copyItem(atPath: tls.key, toPath: key)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
            if let runAs {
                for path in [certificate, key] { try FileManager.default.setAttributes([.ownerAccountName: runAs], ofItemAtPath: path) }
            }
            self.tls = (certificate, key)
        } else {
            self.tls = nil
        }
        try makeDataDirectory()
        // fsync stays on: the store's durability is part of what the tests run against.
        try startNow()
    }

    /// Stops the server (fast shutdown) and removes its folder.
    private static func stopShared() {
        guard let server = started.withLock({ $0 }) else { return }
        try? server.runServerTool("pg_ctl", ["-D", server.dataDirectory, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: server.folder)
    }

    /// A new, empty database; returns its name.
    public func createDatabase() async throws -> String {
        let name = "test_\(getpid())_\(databases.add(1, ordering: .relaxed).newValue)"
        let arguments = ["-h", socketDirectory, "-p", "\(port)", "-U", user, name]
        _ = try await Self.offPool { try self.run(self.binDirectory + "/createdb", arguments, as: nil) }
        return name
    }

    /// Runs `sql` in `database` with `psql` (stops at the first error, which it throws).
    public func psql(database: String, _ sql: String) async throws {
        let arguments = ["-h", socketDirectory, "-p", "\(port)", "-U", user, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql, database]
        _ = try await Self.offPool { try self.run(self.binDirectory + "/psql", arguments, as: nil) }
    }

    /// Runs `sql` in `database` with `psql` and returns its rows, one a line, fields joined by `|`.
    public func query(database: String, _ sql: String) async throws -> [String] {
        let arguments = ["-h", socketDirectory, "-p", "\(port)", "-U", user, "-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c", sql, database]
        let text = try await Self.offPool { try self.run(self.binDirectory + "/psql", arguments, as: nil) }
        return text.split(separator: "\n").map(String.init)
    }

    /// The `psql` executable and the arguments that run `sql` in `database` (for a session a test keeps open).
    public func psqlCommand(database: String, _ sql: String) -> (executable: String, arguments: [String]) {
        (binDirectory + "/psql", ["-h", socketDirectory, "-p", "\(port)", "-U", user, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql, database])
    }

    /// A server of the caller's own (for a test that stops and starts it), or nil without the
    /// binaries. Call ``remove()`` at the end.
    public static func dedicated() async throws -> PostgresServer? {
        guard binaryDirectory() != nil else { return nil }
        return try await Self.offPool { try PostgresServer() }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: as if it crashed; clients see their connections cut).
    public func stop() async throws {
        try await Self.offPool { try self.stopNow() }
    }

    private func stopNow() throws {
        try runServerTool("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
    }

    /// Starts the stopped server again.
    public func start() async throws {
        try await Self.offPool { try self.startNow() }
    }

    private func startNow() throws {
        try runServerTool("pg_ctl", [
            "-D", dataDirectory, "-l", folder + "/server.log", "-w", "-t", "60",
            "-o", "-c listen_addresses='\(tls == nil ? "" : "127.0.0.1")' -c unix_socket_directories='\(socketDirectory)' -p \(port) -c max_connections=200"
                + (tls.map { " -c ssl=on -c ssl_cert_file='\($0.certificate)' -c ssl_key_file='\($0.key)'" } ?? ""),
            "start",
        ])
    }

    /// A server of the caller's own that also listens on 127.0.0.1:`port` with TLS, presenting
    /// `certificate` (PEM files); nil without the binaries. Call ``remove()`` at the end.
    public static func dedicated(certificate: String, key: String) async throws -> PostgresServer? {
        guard binaryDirectory() != nil else { return nil }
        return try await offPool { try PostgresServer(tls: (certificate, key)) }
    }

    /// The `state.url` of `database` over TCP to `host` (the server must listen with TLS: ``dedicated(certificate:key:)``).
    public func tcpURL(database: String, host: String = "localhost", sslmode: String, rootCertificate: String? = nil) -> String {
        "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(sslmode)" + (rootCertificate.map { "&sslrootcert=\($0)" } ?? "")
    }

    /// Stops a ``dedicated()`` server and removes its folder.
    public func remove() {
        try? stopNow()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The `state.url` of `database` on this server.
    public func url(database: String) -> String {
        "postgres://\(user)@localhost/\(database)?host=\(socketDirectory)&port=\(port)&sslmode=disable"
    }

    /// The server's log, for a failure message.
    public var log: String { (try? String(contentsOfFile: folder + "/server.log", encoding: .utf8)) ?? "" }

    /// A data directory that `initdb` made once in this process, copied for every server: `initdb`
    /// takes seconds (half a minute on a busy machine), a copy a fraction of one.
    private static let template = Mutex<String?>(nil)

    /// Makes `dataDirectory`: a copy of the process's template cluster (`initdb` runs for the first).
    private func makeDataDirectory() throws {
        let template = try Self.template.withLock { template -> String in
            if let template { return template }
            let folder = "/tmp/gb-pg-template-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try Self.markOwned(folder)
            if let runAs { try FileManager.default.setAttributes([.ownerAccountName: runAs], ofItemAtPath: folder) }
            let data = folder + "/data"
            try run(binDirectory + "/initdb", ["-D", data, "-U", user, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], as: runAs)
            atexit { PostgresServer.removeTemplate() }
            template = data
            return data
        }
        // `cp -a` keeps the owner (the postgres user when running as root) and the 0700 mode PostgreSQL requires.
        try run("/bin/cp", ["-a", template, dataDirectory], as: nil)
    }

    private static func removeTemplate() {
        guard let data = template.withLock({ $0 }) else { return }
        try? FileManager.default.removeItem(atPath: (data as NSString).deletingLastPathComponent)
    }

    /// Waits up to `milliseconds` for `pid`, a process that is not this one's child (so no
    /// `waitpid`), to exit: a pidfd becomes readable when it does. Where the C library has no
    /// `pidfd_open` (glibc before 2.36) it asks every 50 ms instead.
    private static func waitForExit(of pid: pid_t, milliseconds: Int32) {
        if let open = pidfdOpen {
            let fd = open(pid, 0)
            if fd >= 0 {
                defer { close(fd) }
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                while poll(&entry, 1, milliseconds) < 0 && errno == EINTR {}
                return
            }
            if errno == ESRCH { return }  // gone already
        }
        for _ in 0..<(milliseconds / 50) where kill(pid, 0) == 0 { usleep(50_000) }
    }

    private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    private static let pidfdOpen: PidfdOpen? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_open").map { unsafeBitCast($0, to: PidfdOpen.self) }

    private func runServerTool(_ tool: String, _ arguments: [String]) throws {
        try run(binDirectory + "/" + tool, arguments, as: runAs)
    }

    /// Runs a tool to its end; returns its output (stdout and stderr together).
    @discardableResult
    private func run(_ executable: String, _ arguments: [String], as user: String?) throws -> String {
        // In the server's folder (`env -C`): the postgres user may not enter the test's own.
        let argv = (user.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [executable] + arguments
        // Output to a file, not a pipe: the server `pg_ctl start` leaves running would hold a pipe
        // open. `ChildProcess` closes every other descriptor of this process in the child: the
        // server lives as long as the test process, and a descriptor it inherited (a pipe another
        // test had just made for its child) stayed open that long, so that test waited for the
        // pipe's end of file for ever (a parallel run that hung with every test suspended). And it
        // reaps with `waitpid`: Foundation's `Process` missed the exit of runuser here (it stayed a
        // zombie, waitUntilExit never returned).
        let outputPath = folder + "/tool-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        guard FileManager.default.createFile(atPath: outputPath, contents: nil), let output = FileHandle(forWritingAtPath: outputPath) else {
            throw Unavailable(description: "cannot create \(outputPath)")
        }
        defer { try? output.close() }
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["-C", folder] + argv
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw Unavailable(description: "cannot start \(executable): \(error)")
        }
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard !process.exitedBySignal, process.terminationStatus == 0 else {
            throw Unavailable(description: "\((executable as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus)): \(text)")
        }
        return text
    }
}
