import CurlKit
import Foundation
import TestSupport
import Testing

/// A sink removed from the configuration: at the next start what waited for it becomes dead
/// letters under its old name, listed by `dead-letters list`, instead of a queue nobody reads.
@Suite("removed sink", .machine(.processes))
struct RemovedSinkTests {
    @Test("the queue of a sink removed from the file becomes dead letters at the next start")
    func queueBecomesDeadLetters() async throws {
        let directory = TemporaryDirectory()
        let refusing = try SilentListener()  // a webhook that never answers: deliveries stay queued
        defer { withExtendedLifetime(refusing) {} }  // held to the end, past its last use
        let withHook = EndToEndTests.config()
            .replacingOccurrences(
                of: "  audit: { type: file, path: audit.jsonl }",
                with: """
                      audit: { type: file, path: audit.jsonl }
                      hook: { type: webhook, url: "http://127.0.0.1:\(refusing.port)/hook", timeout: 1s }
                    """)
            .replacingOccurrences(of: "to: [audit]", with: "to: [audit, hook]")
        directory.write("bridge.yaml", withHook)
        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await first.port()
        let client = CurlClient()
        for n in 1...2 {
            #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("removed", n)) == 202)
        }
        #expect(try await eventually { EndToEndTests.numbers("removed", in: jsonLines(directory.file("audit.jsonl"))).count == 2 })
        await client.shutdown()
        first.signal(SIGTERM)
        #expect(await first.waitForExit() == 0)

        directory.write("bridge.yaml", EndToEndTests.config())
        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        _ = try await second.port()
        let retired = try #require(await second.waitForLog(containing: "its queued deliveries are now dead letters"))
        #expect(retired.contains(#""bridge.sink":"hook""#) && retired.contains(#""bridge.deliveries":"2""#), "\(retired)")
        let list = try await runToCompletion(["dead-letters", "list", "--config", "bridge.yaml", "--sink", "hook"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(list.0 == 0, "\(list.2)")
        #expect(list.1.split(separator: "\n").filter { $0.contains("sink=hook") && $0.contains("the sink was removed from the configuration") }.count == 2, "\(list.1)")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
    }
}
