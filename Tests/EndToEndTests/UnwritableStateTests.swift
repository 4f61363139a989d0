import CurlKit
import Foundation
import TestSupport
import Testing

/// The state folder stops taking writes under the running bridge: /notifications answers 503
/// (Graph retries), nothing is acknowledged that is not on disk, the process stays up, and it
/// recovers by itself. `mount -o remount,ro` fails with EBUSY while the store is open, so the fault
/// is injected at the syscall boundary: `libFaultInjection.so` (Tests/FaultInjection), preloaded
/// into the real binary, fails write-type calls under the state folder while a control file
/// exists. Needs no root (`StoreFaultTests` fills a real tmpfs, as root).
@Suite("unwritable state folder", .machine(.exclusive))
struct UnwritableStateTests {
    /// Built by `swift build` next to the executable.
    static let faultLibrary = URL(fileURLWithPath: BridgeProcess.executable).deletingLastPathComponent()
        .appendingPathComponent("libFaultInjection.so").path

    static let canInject: Bool = {
        #if os(Linux)
            FileManager.default.fileExists(atPath: faultLibrary)
        #else
            false
        #endif
    }()

    /// How the folder fails (the shim's `GB_FAULT_ERRNO` and `GB_FAULT_CALLS`).
    enum Fault: CaseIterable, Sendable, CustomTestStringConvertible {
        /// Every write-type call fails: the file system turned read-only.
        case readOnly
        /// Writes fail, opening and syncing work: the disk is full.
        case full
        /// Writes land in the page cache, but fsync fails: nothing can be made durable.
        case syncFails

        var environment: [String: String] {
            switch self {
            case .readOnly: ["GB_FAULT_ERRNO": "EROFS"]
            case .full: ["GB_FAULT_ERRNO": "ENOSPC", "GB_FAULT_CALLS": "write,pwrite,pwrite64,writev,pwritev,fallocate"]
            case .syncFails: ["GB_FAULT_ERRNO": "EIO", "GB_FAULT_CALLS": "fsync,fdatasync"]
            }
        }

        var testDescription: String {
            switch self {
            case .readOnly: "read-only (EROFS)"
            case .full: "full (ENOSPC on writes)"
            case .syncFails: "fsync failing (EIO)"
            }
        }
    }

    static func notification(_ n: Int) -> [UInt8] { EndToEndTests.notification("unwritable", n) }

    /// The N of every `unwritable-N` resource in these texts, repeats kept.
    static func numbers(_ texts: [String]) -> [Int] { EndToEndTests.numbers("unwritable", in: texts) }

    @Test(
        "state folder unwritable: 503 while it lasts, no acknowledged event lost, none delivered twice, recovery by itself",
        .enabled(if: canInject, "needs Linux and libFaultInjection.so next to graph-bridge (swift build makes it)"),
        arguments: Fault.allCases
    )
    func unwritableAndBack(fault: Fault) async throws {
        let directory = TemporaryDirectory()
        let stateDirectory = directory.file("state")
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: false)
        let control = directory.file("faults-on")
        try await withHTTPReceiver { receiver in
            // The webhook's first answer takes 1.5 s: the fault starts while that delivery is in
            // flight, so its outcome is one the store cannot write.
            let client = CurlClient()
            let script = #"{"path": "/hook", "responses": [{"status": 200, "delay_ms": 1500}]}"#
            #expect(
                try await client.execute(HTTPRequest(method: "POST", url: receiver.url("/_control/script"), body: Array(script.utf8))).status == 200)
            directory.write(
                "bridge.yaml",
                EndToEndTests.config()
                    .replacingOccurrences(of: "path: state.sqlite", with: "path: state/state.sqlite")
                    .replacingOccurrences(
                        of: "  audit: { type: file, path: audit.jsonl }",
                        with: """
                              audit: { type: file, path: audit.jsonl }
                              hook: { type: webhook, url: "\(receiver.url("/hook"))", timeout: 5s, concurrency: 1 }
                            """
                    )
                    .replacingOccurrences(of: "to: [audit]", with: "to: [audit, hook]"))
            let environment = EndToEndTests.environment
                .merging(["LD_PRELOAD": Self.faultLibrary, "GB_FAULT_DIR": stateDirectory, "GB_FAULT_CONTROL": control]) { _, new in new }
                .merging(fault.environment) { _, new in new }
            let bridge = try BridgeProcess(
                ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: environment)
            let port = try await bridge.port()
            var acknowledged: Set<Int> = []
            var refused: Set<Int> = []
            var n = 0
            func post() async throws -> Int {
                n += 1
                let status = try await EndToEndTests.post(client, port: port, body: Self.notification(n))
                if status == 202 { acknowledged.insert(n) } else { refused.insert(n) }
                return status
            }
            func health() async throws -> Int {
                try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/healthz")).status
            }

            for _ in 0..<10 { #expect(try await post() == 202) }
            #expect(try await eventually { try receiver.recordedRequests().count >= 1 })

            // Faults on: no journal commit can be made durable, so every POST is refused.
            #expect(FileManager.default.createFile(atPath: control, contents: nil))
            for _ in 0..<5 { #expect(try await post() == 503) }
            #expect(try await health() == 503)
            // The in-flight webhook delivery's outcome cannot be written; it is written again later
            // (100 ms, 200 ms) rather than forgotten, which would send the event a second time.
            #expect(
                try await bridge.waitForMetric("graph_bridge_outcome_write_failures_total", labels: ["sink": "hook"], atLeast: 3),
                "\(bridge.log.suffix(3000))")
            #expect(try await post() == 503, "still failing, still refused, still serving")

            // Faults off: the very next POST is journaled; no restart, no operator.
            try FileManager.default.removeItem(atPath: control)
            #expect(try await post() == 202)
            #expect(try await health() == 200)
            for _ in 0..<5 { #expect(try await post() == 202) }

            // Every acknowledged notification reaches both sinks, once; nothing refused shows up.
            let audit = directory.file("audit.jsonl")
            func hookNumbers() throws -> [Int] { Self.numbers(try receiver.recordedRequests().map { String(decoding: $0.body, as: UTF8.self) }) }
            let expected = acknowledged
            #expect(
                try await eventually(timeout: .seconds(20)) {
                    let hooked = try hookNumbers()
                    return expected.isSubset(of: Self.numbers(jsonLines(audit))) && expected.isSubset(of: hooked)
                })
            let delivered = Self.numbers(jsonLines(audit))
            let hooked = try hookNumbers()
            #expect(delivered.count == Set(delivered).count, "duplicates in the file: \(delivered.sorted())")
            #expect(hooked.count == Set(hooked).count, "duplicates at the webhook: \(hooked.sorted())")
            #expect(refused.isDisjoint(with: delivered) && refused.isDisjoint(with: hooked), "a refused notification was delivered")
            #expect(acknowledged.count == 16 && refused.count == 6)
            let recoveryLogged = bridge.log.contains("journal writes work again") && bridge.log.contains("delivery outcomes are written again")
            #expect(recoveryLogged)

            await client.shutdown()
            bridge.signal(SIGTERM)
            #expect(await bridge.waitForExit() == 0)
        }
    }
}
