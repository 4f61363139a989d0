import CurlKit
import Foundation
import Synchronization
import TestSupport
import Testing

/// Start-up through the real binary: every failure to start ends the process by itself with a
/// clear message and exit 1 (a bridge that hangs at start and ignores SIGTERM is what systemd
/// would be left with); a second bridge on the same state file is refused; and after a restart a
/// notification for a stored subscription is routed while Graph is still being asked about it.
@Suite("start-up", .machine(.processes))
struct StartupTests {
    /// A managed subscription (whose manager waits for the listener: the case that hung) and a
    /// Graph that never answers. `listen`, `state` and `extraServer` vary per case.
    static func config(graphPort: Int, listen: String = "127.0.0.1:0", publicPort: Int = 8080, state: String = "state.sqlite", extraServer: String? = nil) -> String {
        graphConfigSection(
            tenant: "contoso.onmicrosoft.com", clientId: "11111111-2222-3333-4444-555555555555", secret: "not-a-secret",
            authority: "http://127.0.0.1:\(graphPort)")
            + serverConfigSection(listen: listen, publicUrl: "http://127.0.0.1:\(publicPort)", extra: extraServer.map { [$0] } ?? []) + """
        state:
          path: \(state)
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/mailFolders('Inbox')/messages
            changeTypes: [created]
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - to: [audit]

        """
    }

    enum Failure: CaseIterable, Sendable, CustomTestStringConvertible {
        case portInUse, addressNotLocal, stateFolderUnwritable, certificateUnusable

        var testDescription: String {
            switch self {
            case .portInUse: "port in use"
            case .addressNotLocal: "address not local"
            case .stateFolderUnwritable: "state folder unwritable"
            case .certificateUnusable: "certificate unusable"
            }
        }
    }

    @Test("a start-up failure ends the process with a clear message and exit 1", arguments: Failure.allCases)
    func startupFailureExits(_ failure: Failure) async throws {
        if failure == .stateFolderUnwritable {
            try #require(UnwritableStateTests.canInject, "needs libFaultInjection.so next to the binary (swift build makes it)")
        }
        let directory = TemporaryDirectory()
        let graph = try SilentListener()
        let held = try SilentListener()  // a port another process holds
        // Held to the end: Swift may free an object after its last use, and these must outlive the bridge.
        defer { withExtendedLifetime((graph, held)) {} }
        var environment: [String: String] = [:]
        let expected: String
        switch failure {
        case .portInUse:
            directory.write("bridge.yaml", Self.config(graphPort: graph.port, listen: "127.0.0.1:\(held.port)"))
            expected = "127.0.0.1:\(held.port) is in use"
        case .addressNotLocal:
            // TEST-NET-1 (RFC 5737): never an address of this machine; bind() fails, nothing is sent.
            directory.write("bridge.yaml", Self.config(graphPort: graph.port, listen: "192.0.2.1:8080"))
            expected = "192.0.2.1 is not an address of this machine"
        case .stateFolderUnwritable:
            try FileManager.default.createDirectory(atPath: directory.file("state"), withIntermediateDirectories: true)
            directory.write("faults-on", "")
            directory.write("bridge.yaml", Self.config(graphPort: graph.port, state: "state/state.sqlite"))
            environment = ["LD_PRELOAD": UnwritableStateTests.faultLibrary, "GB_FAULT_DIR": directory.file("state"), "GB_FAULT_CONTROL": directory.file("faults-on")]
            expected = "cannot open the state store"
        case .certificateUnusable:
            directory.write("server.pem", "not a certificate\n")
            directory.write("server.key", "not a key\n")
            directory.write("bridge.yaml", Self.config(graphPort: graph.port, extraServer: "tls: { certificate: server.pem, key: server.key }"))
            expected = "server.tls"
        }
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: environment)
        let status = await bridge.waitForExit(orSignalAfter: .seconds(10))
        #expect(status.exitedByItself, "still running 10 s after start (took SIGTERM: \(status.tookSIGTERM)): \(bridge.log)")
        #expect(status.code == 1, "\(bridge.log)")
        // Awaited, not read at once: the last lines may reach the pipe after the exit is seen.
        #expect(await bridge.waitForLog(containing: expected) != nil, "the message names the problem (\(expected)): \(bridge.log)")
    }

    @Test("a second bridge on the same state file exits 1 and says so; the first keeps serving")
    func secondProcessOnTheStateFileIsRefused() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", EndToEndTests.config())
        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await first.port()

        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let status = await second.waitForExit(orSignalAfter: .seconds(10))
        #expect(status.exitedByItself && status.code == 1, "\(second.log)")
        #expect(await second.waitForLog(containing: "another graph-bridge is already running on the state file") != nil, "\(second.log)")

        let client = CurlClient()
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("lock", 1)) == 202)
        #expect(try await eventually { EndToEndTests.numbers("lock", in: jsonLines(directory.file("audit.jsonl"))) == [1] })
        await client.shutdown()
        first.signal(SIGTERM)
        #expect(await first.waitForExit() == 0)

        // The lock goes with the process: a new bridge starts on the file.
        let third = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        _ = try await third.port()
        third.signal(SIGTERM)
        #expect(await third.waitForExit() == 0)
    }

    @Test("the state file is made private (0600) on every start, not only when created")
    func stateFileMadePrivate() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", EndToEndTests.config())
        directory.write("state.sqlite", "")
        #expect(chmod(directory.file("state.sqlite"), 0o644) == 0)
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        _ = try await bridge.port()
        let mode = try FileManager.default.attributesOfItem(atPath: directory.file("state.sqlite"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }
}

/// How a child process ended when waited for with a deadline.
struct ExitStatus {
    var code: Int32
    /// It ended before the deadline, without a signal from the test.
    var exitedByItself: Bool
    /// The test had to send SIGTERM (and it ended within 10 s of it).
    var tookSIGTERM: Bool
}

extension BridgeProcess {
    /// Sends SIGTERM and waits for the exit; after `limit` sends SIGKILL. Returns the exit status
    /// and whether the process stopped within the limit by itself.
    func terminate(within limit: Duration) async -> (code: Int32, inTime: Bool) {
        let killed = Mutex(false)
        signal(SIGTERM)
        let watchdog = Task {
            try await Task.sleep(for: limit)
            killed.withLock { $0 = true }
            self.signal(SIGKILL)
        }
        let code = await waitForExit()
        watchdog.cancel()
        return (code, !killed.withLock { $0 })
    }

    /// Waits for the process to exit; past `deadline` sends SIGTERM, and 10 s later SIGKILL. The
    /// deadline is a bound on a failure, not a pause: a process that exits returns at once.
    func waitForExit(orSignalAfter deadline: Duration) async -> ExitStatus {
        let signalled = Mutex(false)
        let watchdog = Task {
            try await Task.sleep(for: deadline)
            signalled.withLock { $0 = true }
            self.signal(SIGTERM)
            try await Task.sleep(for: .seconds(10))
            self.signal(SIGKILL)
        }
        let code = await waitForExit()
        watchdog.cancel()
        let tookSIGTERM = signalled.withLock { $0 }
        return ExitStatus(code: code, exitedByItself: !tookSIGTERM, tookSIGTERM: tookSIGTERM)
    }
}
