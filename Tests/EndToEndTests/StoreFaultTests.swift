import CurlKit
import Foundation
import Testing
import TestSupport

/// The state folder on a small tmpfs that the test fills up: the bridge must
/// answer 503 (Graph retries) rather than acknowledge what is not on disk, stay up, and recover
/// by itself. Needs root to mount; skipped with a reason otherwise.
@Suite("store faults", .serialized, .machine(.exclusive))
struct StoreFaultTests {
    static let canMount: Bool = {
        guard getuid() == 0 else { return false }
        let probe = TemporaryDirectory()
        guard (try? shell("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", probe.path)) == 0 else { return false }
        _ = try? shell("umount", probe.path)
        return true
    }()

    @discardableResult
    static func shell(_ arguments: String...) throws -> Int32 {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func notification(_ n: Int) -> [UInt8] { EndToEndTests.notification("fault", n) }

    @Test("disk full: 503 while it lasts, recovery after, nothing acknowledged is lost", .enabled(if: canMount, "needs root to mount a small tmpfs for the state folder"))
    func fullAndReadOnly() async throws {
        let directory = TemporaryDirectory()
        let stateDirectory = directory.file("state")
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: false)
        #expect(try Self.shell("mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", stateDirectory) == 0)
        defer { _ = try? Self.shell("umount", "-l", stateDirectory) }
        directory.write("bridge.yaml", EndToEndTests.config().replacingOccurrences(of: "path: state.sqlite", with: "path: state/state.sqlite"))

        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        var acknowledged: Set<Int> = []
        var n = 0
        func post() async throws -> Int {
            n += 1
            let status = try await EndToEndTests.post(client, port: port, body: Self.notification(n))
            if status == 202 { acknowledged.insert(n) }
            return status
        }
        #expect(try await post() == 202)

        // Fill the file system: the next journal writes fail.
        // (dd stops when the file system is full; its exit status says so.)
        _ = try? Self.shell("dd", "if=/dev/zero", "of=\(stateDirectory)/filler", "bs=64k")
        var sawUnavailable = false
        for _ in 0..<200 where !sawUnavailable {
            sawUnavailable = try await post() == 503
        }
        #expect(sawUnavailable, "a full disk must turn into 503")
        let healthWhileFull = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/healthz"))
        #expect(healthWhileFull.status == 503)

        // Space returns: the bridge recovers by itself.
        try FileManager.default.removeItem(atPath: "\(stateDirectory)/filler")
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = try await post() == 202
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered, "the journal must work again once space returns")

        // Every acknowledged notification reaches the sink.
        let audit = directory.file("audit.jsonl")
        let expected = acknowledged
        #expect(try await eventually(timeout: .seconds(30)) {
            let delivered = Set(EndToEndTests.numbers("fault", in: jsonLines(audit)))
            return expected.isSubset(of: delivered)
        })
        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }
}
