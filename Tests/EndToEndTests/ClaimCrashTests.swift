import CurlKit
import Foundation
import TestSupport
import Testing

/// The SQLite store keeps delivery claims in memory and records outcomes as deferred writes that
/// join a later commit (docs/performance.md, issue 16): a `kill -9` while deliveries are claimed,
/// in flight at a sink, and their outcomes not written must lose none of them, and may repeat
/// only what at-least-once allows.
@Suite("kill -9 with deliveries claimed and outcomes unwritten", .machine(.exclusive))
struct ClaimCrashTests {
    static let tag = "claimcrash"
    static let count = 30

    /// The test's bridge: the file sink and a webhook sink to `url` (8 lanes).
    static func config(webhook url: String) -> String {
        EndToEndTests.config().replacingOccurrences(
            of: "  audit: { type: file, path: audit.jsonl }",
            with: """
                  audit: { type: file, path: audit.jsonl }
                  hook: { type: webhook, url: "\(url)", timeout: 30s, concurrency: 8 }
                """
        ).replacingOccurrences(of: "to: [audit]", with: "to: [audit, hook]")
    }

    static func numbers(_ texts: [String]) -> [Int] { EndToEndTests.numbers(tag, in: texts) }

    static func fileNumbers(_ directory: TemporaryDirectory) -> [Int] {
        let text = (try? String(contentsOfFile: directory.file("audit.jsonl"), encoding: .utf8)) ?? ""
        return numbers(text.split(separator: "\n").map(String.init))
    }

    static func hookNumbers(_ receiver: HTTPReceiver, path: String) throws -> [Int] {
        numbers(try receiver.recordedRequests().filter { $0.path == path }.map { String(decoding: $0.body, as: UTF8.self) })
    }

    @Test("SIGKILL while deliveries are claimed and in flight: after a restart every event reaches both sinks, the held ones once more")
    func killWhileClaimed() async throws {
        try await withHTTPReceiver { receiver in
            let directory = TemporaryDirectory()
            let holding = "/slow/30000"
            directory.write("bridge.yaml", Self.config(webhook: receiver.url(holding)))
            let first = try BridgeProcess(
                ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
            let port = try await first.port()
            let client = CurlClient()
            for n in 0..<Self.count {
                #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification(Self.tag, n)) == 202)
            }
            // The webhook holds 8 deliveries at the receiver (claimed, sent, no outcome); the other
            // 22 are claimed behind them or queued. The file sink has written all 30, their
            // outcomes durable or still waiting for a commit.
            #expect(try await eventually(timeout: .seconds(15)) { try receiver.recordedRequests().filter { $0.path == holding }.count >= 8 })
            #expect(try await eventually(timeout: .seconds(15)) { Set(Self.fileNumbers(directory)).count == Self.count })
            let held = Set(try Self.hookNumbers(receiver, path: holding))
            #expect(held.count >= 8)
            first.signal(SIGKILL)
            _ = await first.waitForExit()

            // The next start frees the dead process's claims: the webhook (now answering at once)
            // gets every event, and nothing was recorded delivered to it, so each exactly once.
            directory.write("bridge.yaml", Self.config(webhook: receiver.url("/hook")))
            let second = try BridgeProcess(
                ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
            _ = try await second.port()
            let all = Set(0..<Self.count)
            let delivered = try await eventually(timeout: .seconds(20)) { Set(try Self.hookNumbers(receiver, path: "/hook")) == all }
            #expect(
                delivered, "the webhook got \(Set((try? Self.hookNumbers(receiver, path: "/hook")) ?? []).count) of \(Self.count) after the restart")
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
            await client.shutdown()

            let hook = try Self.hookNumbers(receiver, path: "/hook")
            #expect(hook.count == Self.count, "a delivery with no outcome recorded was sent twice after the restart: \(hook.sorted())")
            // The file sink: every event at least once; one whose success had not reached a commit
            // at the kill is written again (at-least-once), never more than that.
            let file = Self.fileNumbers(directory)
            #expect(Set(file) == all)
            let repeats = Dictionary(grouping: file, by: { $0 }).filter { $0.value.count > 2 }
            #expect(repeats.isEmpty, "events written more than twice: \(repeats.keys.sorted())")
        }
    }
}
