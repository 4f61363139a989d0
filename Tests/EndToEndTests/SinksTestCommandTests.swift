import Foundation
import TestSupport
import Testing

/// `graph-bridge sinks test NAME`: a sample event through one configured sink, for real.
@Suite("sinks test command", .machine(.processes))
struct SinksTestCommandTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test("a webhook that answers 200 is reported delivered; one that answers 400 is a permanent failure")
    func webhook() async throws {
        try await withHTTPReceiver { receiver in
            let directory = TemporaryDirectory()
            directory.write("bridge.yaml", """
                sinks:
                  chat: { type: webhook, url: "\(receiver.url("/hook"))", format: slack }
                  broken: { type: webhook, url: "\(receiver.url("/status/400"))" }

                """)
            let good = try await runToCompletion(["sinks", "test", "chat", "--config", "bridge.yaml"], directory: directory.path)
            #expect(good.0 == 0, "\(good.1)\(good.2)")
            #expect(good.1.hasPrefix("sink chat (webhook): delivered in "))
            let request = try #require(try receiver.recordedRequests().first { $0.path == "/hook" })
            #expect(request.header("webhook-id")?.isEmpty == false)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            #expect((payload["text"] as? String)?.contains("graph-bridge sink test") == true)

            let bad = try await runToCompletion(["sinks", "test", "broken", "--config", "bridge.yaml"], directory: directory.path)
            #expect(bad.0 == 1)
            #expect(bad.1.contains("permanent failure") && bad.1.contains("400"))
        }
    }

    @Test("an exec sink is started, given the sample event, and stopped")
    func exec() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", """
            sinks:
              plugin:
                type: exec
                command: [\(Self.root)/examples/plugins/log-to-file.sh, \(directory.file("plugin-events.jsonl"))]
                timeout: 10s

            """)
        let result = try await runToCompletion(["sinks", "test", "plugin", "--config", "bridge.yaml"], directory: directory.path)
        #expect(result.0 == 0, "\(result.1)\(result.2)")
        #expect(result.1.hasPrefix("sink plugin (exec): delivered in "))
        #expect(jsonLines(directory.file("plugin-events.jsonl")).first?.contains("graph-bridge sink test") == true)
    }
}
