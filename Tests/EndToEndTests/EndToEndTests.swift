import CurlKit
import Foundation
import Testing
import TestSupport

/// The real executable, a temp `bridge.yaml`, loopback HTTP, the file sink's lines.
@Suite("end to end", .serialized, .machine(.processes))
struct EndToEndTests {
    static let subscriptionID = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"

    static func config(auditPath: String = "audit.jsonl") -> String {
        serverConfigSection(extra: ["maxBodyBytes: 64KiB"]) + """
        state:
          path: state.sqlite
        subscriptions:
          - name: audit-feed
            manage: false
            id: \(subscriptionID)
            clientState: ${FEED_STATE}
        sinks:
          audit: { type: file, path: \(auditPath) }
        retry:
          initialBackoff: 100ms
          maxBackoff: 200ms
        routes:
          - to: [audit]

        """
    }

    static let environment = ["FEED_STATE": "secretClientValue"]

    /// A one-item POST body for the test subscription; its resource is `Users/1/Messages/TAG-N` (etag N).
    static func notification(_ tag: String, _ n: Int) -> [UInt8] {
        Array(
            #"{"value":[{"subscriptionId":"\#(subscriptionID)","clientState":"secretClientValue","changeType":"created","resource":"Users/1/Messages/\#(tag)-\#(n)","resourceData":{"@odata.etag":"\#(n)"}}]}"#
                .utf8)
    }

    /// The N of every `TAG-N` resource in these texts (file sink lines or webhook bodies), repeats kept.
    static func numbers(_ tag: String, in texts: [String]) -> [Int] {
        texts.compactMap { text in
            text.range(of: tag + #"-\d+""#, options: .regularExpression).flatMap { Int(text[$0].dropFirst(tag.count + 1).dropLast()) }
        }
    }

    static func samples() throws -> (created: [UInt8], lifecycle: [UInt8]) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.deletingLastPathComponent().appendingPathComponent("shared/graph-vectors/notification-samples.json").path
        let data = try #require(FileManager.default.contents(atPath: path))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (
            try JSONSerialization.data(withJSONObject: object["basic_message_created"]!).map { $0 },
            try JSONSerialization.data(withJSONObject: object["lifecycle_batch"]!).map { $0 }
        )
    }

    static let samplesPresent = (try? samples()) != nil

    static func post(_ client: CurlClient, port: Int, path: String = "/notifications", body: [UInt8]) async throws -> Int {
        try await client.execute(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)\(path)", headers: [("Content-Type", "application/json")], body: body)).status
    }

    @Test("Graph-shaped notifications in, one JSON line per event out", .enabled(if: samplesPresent, "needs ../shared/graph-vectors beside the checkout"))
    func notificationsReachTheFile() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config())
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        let samples = try Self.samples()
        #expect(try await Self.post(client, port: port, body: samples.created) == 202)
        #expect(try await Self.post(client, port: port, path: "/lifecycle", body: samples.lifecycle) == 202)
        // Graph's retry of the same change is delivered once.
        #expect(try await Self.post(client, port: port, body: samples.created) == 202)

        let audit = directory.file("audit.jsonl")
        #expect(try await eventually { jsonLines(audit).count >= 4 })
        let lines = jsonLines(audit)
        #expect(lines.count == 4)
        let events = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(events[0]["changeType"] as? String == "created")
        #expect(events[0]["resource"] as? String == "Users/622eaaff-0683-4862-9de4-f2ec83c2bd98/Messages/AAMkAGUwNjQ4ZjIxAAA=")
        #expect((events[0]["subscription"] as? [String: Any])?["name"] as? String == "audit-feed")
        #expect(events.dropFirst().map { $0["lifecycleEvent"] as? String } == ["reauthorizationRequired", "subscriptionRemoved", "missed"])
        #expect(Set(events.compactMap { $0["id"] as? String }).count == 4)

        // The status page (on the admin listener): its data shows the subscription, the events and the sink, and no secret.
        let adminPort = try await bridge.adminPort()
        let page = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(adminPort)/"))
        #expect(page.status == 200 && page.header("Content-Type")?.hasPrefix("text/html") == true)
        let status = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(adminPort)/status.json"))
        let statusObject = try #require(try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])
        #expect((statusObject["subscriptions"] as? [[String: Any]])?.first?["name"] as? String == "audit-feed")
        #expect((statusObject["recentEvents"] as? [Any])?.count == 4)
        #expect((statusObject["sinks"] as? [[String: Any]])?.first?["name"] as? String == "audit")
        #expect((statusObject["unrouted"] as? NSNumber)?.intValue == 0, "every event was routed before the sink saw it")
        #expect(!status.bodyText.contains("secretClientValue"))
        let metrics = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(adminPort)/metrics"))
        #expect(metrics.bodyText.contains("graph_bridge_notifications_total"))
        #expect(!metrics.bodyText.contains("secretClientValue"))
        #expect(!bridge.log.contains("secretClientValue"))

        // `subscriptions` reads the same state file while the bridge runs.
        let listing = try await runToCompletion(["subscriptions", "--config", "bridge.yaml"], directory: directory.path, environment: Self.environment)
        #expect(listing.0 == 0)
        let rows = listing.1.split(separator: "\n").map(String.init)
        #expect(rows.first?.hasPrefix("NAME") == true)
        #expect(rows.count == 2 && rows[1].contains("audit-feed (receive-only)") && rows[1].contains(Self.subscriptionID))
        #expect(rows.count == 2 && !rows[1].hasSuffix("never"), "the last notification time is recorded")

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    @Test("bad input gets its status, reaches no sink, and the bridge keeps serving")
    func badInput() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config())
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        func item(_ clientState: String, id: String = Self.subscriptionID, resource: String) -> [UInt8] {
            Array(#"{"value":[{"subscriptionId":"\#(id)","clientState":"\#(clientState)","changeType":"created","resource":"\#(resource)"}]}"#.utf8)
        }
        #expect(try await Self.post(client, port: port, body: item("wrong", resource: "forged")) == 202)
        #expect(try await Self.post(client, port: port, body: item("secretClientValue", id: "11111111-0000-0000-0000-000000000000", resource: "unknown")) == 202)
        #expect(try await Self.post(client, port: port, body: Array("{\"value\": [".utf8)) == 400)
        #expect(try await Self.post(client, port: port, body: [UInt8](repeating: 0x20, count: 70_000)) == 413)
        #expect(try await Self.post(client, port: port, body: item("secretClientValue", resource: "good")) == 202)

        let audit = directory.file("audit.jsonl")
        #expect(try await eventually { jsonLines(audit).count >= 1 })
        // The good one is delivered, as the bridge counts it; nothing else is there.
        #expect(try await bridge.waitForMetric("graph_bridge_deliveries_total", labels: ["sink": "audit", "outcome": "success"]), "\(bridge.log)")
        #expect(jsonLines(audit).count == 1)
        #expect(jsonLines(audit).first?.contains("\"resource\":\"good\"") == true)
        let health = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/healthz"))
        #expect(health.status == 200)

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    @Test("kill -9 after the 202 while the only sink fails: the restarted bridge delivers the event")
    func survivesKill() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config())
        // The sink's path is a folder: every write fails, and the delivery stays queued.
        let audit = directory.file("audit.jsonl")
        try FileManager.default.createDirectory(atPath: audit, withIntermediateDirectories: false)

        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        let client = CurlClient()
        let port = try await first.port()
        let body = Array(#"{"value":[{"subscriptionId":"\#(Self.subscriptionID)","clientState":"secretClientValue","changeType":"updated","resource":"Users/1/Events/kill-9"}]}"#.utf8)
        #expect(try await Self.post(client, port: port, body: body) == 202)
        // The first attempt failed and its retry is recorded in the store: what the bridge counts.
        #expect(try await first.waitForMetric("graph_bridge_deliveries_total", labels: ["sink": "audit", "outcome": "retry"]), "\(first.log)")
        first.signal(SIGKILL)
        _ = await first.waitForExit()

        try FileManager.default.removeItem(atPath: audit)
        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        _ = try await second.port()
        #expect(try await eventually { jsonLines(audit).count >= 1 })
        #expect(jsonLines(audit).count == 1)
        #expect(jsonLines(audit).first?.contains("\"resource\":\"Users/1/Events/kill-9\"") == true)

        await client.shutdown()
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0)
    }

    @Test("SIGTERM exits 0 within 10 seconds and keeps undelivered work for the next start")
    func gracefulShutdown() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config())
        let audit = directory.file("audit.jsonl")
        try FileManager.default.createDirectory(atPath: audit, withIntermediateDirectories: false)
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        let body = Array(#"{"value":[{"subscriptionId":"\#(Self.subscriptionID)","clientState":"secretClientValue","changeType":"deleted","resource":"Users/1/Messages/sigterm"}]}"#.utf8)
        #expect(try await Self.post(client, port: port, body: body) == 202)
        #expect(try await bridge.waitForMetric("graph_bridge_deliveries_total", labels: ["sink": "audit", "outcome": "retry"]), "\(bridge.log)")

        let started = ContinuousClock.now
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(bridge.log.contains("\"message\":\"stopped\""))

        try FileManager.default.removeItem(atPath: audit)
        let again = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: Self.environment)
        _ = try await again.port()
        #expect(try await eventually { jsonLines(audit).count == 1 })
        #expect(jsonLines(audit).first?.contains("Users/1/Messages/sigterm") == true)
        await client.shutdown()
        again.signal(SIGTERM)
        #expect(await again.waitForExit() == 0)
    }

    @Test("check: exit 0 for a valid file; exit 1 with FILE:LINE:COL lines for a broken one")
    func check() async throws {
        let directory = TemporaryDirectory()
        directory.write("good.yaml", Self.config())
        let good = try await runToCompletion(["check", "--config", "good.yaml"], directory: directory.path, environment: Self.environment)
        #expect(good.0 == 0)

        directory.write("bad.yaml", Self.config().replacingOccurrences(of: "maxBodyBytes: 64KiB", with: "maxBodyByte: 64KiB")
            .replacingOccurrences(of: "to: [audit]", with: "to: [audit, chat]"))
        let bad = try await runToCompletion(["check", "--config", "bad.yaml"], directory: directory.path)
        #expect(bad.0 == 1)
        #expect(bad.2.split(separator: "\n") == [
            "bad.yaml:3:3: unknown key 'maxBodyByte' in server (did you mean 'maxBodyBytes'?)",
            "bad.yaml:11:18: environment variable FEED_STATE is not set (set it, or write ${FEED_STATE:-default})",
            "bad.yaml:18:17: route sends to undefined sink 'chat' (defined sinks: audit)",
        ])
    }

    @Test("bridge.example.yaml passes check")
    func example() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let result = try await runToCompletion(["check", "--config", "bridge.example.yaml"], directory: root)
        #expect(result.0 == 0, "\(result.2)")
    }
}
