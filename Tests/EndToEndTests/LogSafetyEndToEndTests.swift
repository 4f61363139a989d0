import CurlKit
import Foundation
import Testing
import TestSupport

/// What a sender of notifications can do to the real binary's log and files (issue 11, points 5 and 9).
@Suite("end to end: logs and files a sender cannot abuse", .serialized, .machine(.processes))
struct LogSafetyEndToEndTests {
    /// A subscription id that tries to end the log line, forge the next one and colour the terminal.
    static let hostileID = "nope\n{\"time\":\"2026-12-06T00:00:00.000Z\",\"level\":\"error\",\"message\":\"forged\"}\u{1B}[31m\u{85}"

    static func items(_ count: Int, id: String) -> [UInt8] {
        let item = #"{"subscriptionId":\#(jsonString(id)),"clientState":"guess","changeType":"created","resource":"Users/1/Messages/x","resourceData":{"@odata.etag":"1"}}"#
        return Array(#"{"value":[\#(Array(repeating: item, count: count).joined(separator: ","))]}"#.utf8)
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: text, options: .fragmentsAllowed), as: UTF8.self)
    }

    @Test("hostile notifications: one valid JSON log line per request at most once a second, escapes intact; the file sink's file is 0600")
    func hostileNotifications() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", EndToEndTests.config())
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let client = CurlClient()

        let started = ContinuousClock.now
        #expect(try await EndToEndTests.post(client, port: port, body: Self.items(200, id: Self.hostileID)) == 202)  // under the 64 KiB maxBodyBytes
        for _ in 0..<30 {
            #expect(try await EndToEndTests.post(client, port: port, body: Self.items(3, id: Self.hostileID)) == 202)
        }
        let elapsed = ContinuousClock.now - started
        // A real one still gets through, and the file it lands in is private.
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("logsafety", 1)) == 202)
        let audit = directory.file("audit.jsonl")
        #expect(try await eventually { jsonLines(audit).count == 1 })
        let attributes = try FileManager.default.attributesOfItem(atPath: audit)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        #expect(await bridge.waitForLog(containing: "\"message\":\"stopped\"") != nil)

        // Every line of standard error is one JSON object; no line was forged.
        let lines = bridge.log.split(separator: "\n").map(String.init)
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not one JSON object: \(line)")
        }
        #expect(!lines.contains { $0.hasPrefix(#"{"time":"2026-12-06T00:00:00.000Z""#) })
        let dropped = lines.filter { $0.contains("dropped notification items") }
        // 31 requests: one line, plus at most one more per second that the sending took.
        let allowed = Int((elapsed / .seconds(1)).rounded(.down)) + 1
        #expect(!dropped.isEmpty && dropped.count <= allowed, "\(dropped.count) lines in \(elapsed)")
        let first = try #require(try JSONSerialization.jsonObject(with: Data(dropped[0].utf8)) as? [String: Any])
        #expect(first["bridge.dropped.unknown_subscription"] as? String == "200")
        #expect(first["bridge.subscription_id"] as? String == Self.hostileID)
        #expect(dropped[0].contains(#"\u001b[31m\u0085"#))
        #expect(!bridge.log.contains("guess"), "a clientState is never logged")
    }
}
