import CurlKit
import Foundation
import TestSupport
import Testing

/// The two listeners of the real binary (SPEC section 5): what each serves, the admin token,
/// `/readyz` with managed subscriptions, the `# HELP` of every metric, and slow clients.
@Suite("listeners end to end", .machine(.processes))
struct ListenerEndToEndTests {
    static func start(_ directory: TemporaryDirectory, config: String = EndToEndTests.config(), environment: [String: String] = [:]) throws
        -> BridgeProcess
    {
        directory.write("bridge.yaml", config)
        return try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path,
            environment: EndToEndTests.environment.merging(environment) { _, new in new })
    }

    @Test("the public listener serves only Graph's paths and a one-word /healthz; the admin listener the rest; each is logged once")
    func twoListeners() async throws {
        let directory = TemporaryDirectory()
        let bridge = try Self.start(directory)
        let port = try await bridge.port()
        let adminPort = try await bridge.adminPort()
        #expect(port != adminPort)
        let client = CurlClient()
        let base = "http://127.0.0.1:\(port)"
        let admin = "http://127.0.0.1:\(adminPort)"

        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("L", 1)) == 202)
        let health = try await client.execute(HTTPRequest(url: base + "/healthz"))
        #expect(health.status == 200 && health.bodyText == "ok\n")
        for path in ["/", "/status.json", "/metrics", "/readyz", "/favicon.ico"] {
            #expect(try await client.execute(HTTPRequest(url: base + path)).status == 404, "\(path) on the public listener")
        }
        #expect(try await client.execute(HTTPRequest(url: admin + "/")).header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(try await client.execute(HTTPRequest(url: admin + "/status.json")).bodyText.contains("audit-feed"))
        #expect(try await client.execute(HTTPRequest(url: admin + "/metrics")).bodyText.contains("graph_bridge_notifications_total"))
        let adminHealth = try await client.execute(HTTPRequest(url: admin + "/healthz"))
        #expect(adminHealth.status == 200 && adminHealth.bodyText == #"{"status":"ok"}"#)
        // Receive-only subscriptions only: nothing to wait for at Graph.
        let ready = try await client.execute(HTTPRequest(url: admin + "/readyz"))
        #expect(ready.status == 200 && ready.bodyText == #"{"status":"ready"}"#)
        #expect(
            try await client.execute(HTTPRequest(method: "POST", url: admin + "/notifications", body: EndToEndTests.notification("L", 2))).status
                == 404)

        // One `listening` line per listener (issue 17: it was logged twice), and not Hummingbird's own.
        let listening = bridge.log.split(separator: "\n").filter { $0.contains(#""message":"listening""#) }
        #expect(listening.count == 2, "\(listening)")
        #expect(listening.contains { $0.contains(#""bridge.listener":"public""#) && $0.contains(#""bridge.port":"\#(port)""#) })
        #expect(listening.contains { $0.contains(#""bridge.listener":"admin""#) && $0.contains(#""bridge.address":"127.0.0.1:\#(adminPort)""#) })
        #expect(!bridge.log.contains("Server started"))

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    @Test("an admin address off loopback without a token is refused by check and run at its line; with a token, requests need it")
    func adminToken() async throws {
        let directory = TemporaryDirectory()
        let exposed = EndToEndTests.config().replacingOccurrences(of: "admin: { listen: 127.0.0.1:0 }", with: "admin:\n    listen: 0.0.0.0:0")
        directory.write("bridge.yaml", exposed)
        let line = exposed.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("0.0.0.0:0") }! + 1
        for command in ["check", "run"] {
            let (status, _, errors) = try await runToCompletion(
                [command, "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
            #expect(status == 1, "\(command)")
            #expect(errors.contains("bridge.yaml:\(line):13: admin.listen 0.0.0.0 is not a loopback address"), "\(command): \(errors)")
            #expect(!errors.contains("listening"), "\(command) opened nothing")
        }
        directory.write("bridge.yaml", exposed.replacingOccurrences(of: "listen: 0.0.0.0:0", with: "listen: 0.0.0.0:0\n    token: ${ADMIN_TOKEN}"))
        let check = try await runToCompletion(
            ["check", "--config", "bridge.yaml"], directory: directory.path,
            environment: EndToEndTests.environment.merging(["ADMIN_TOKEN": "t0ken"]) { _, new in new })
        #expect(check.0 == 0, "\(check.2)")

        // A token on loopback (this test binds nothing beyond loopback): every admin request needs it.
        let token = "adm-9f8e7d6c5b4a"
        let bridge = try Self.start(
            directory,
            config: EndToEndTests.config().replacingOccurrences(
                of: "admin: { listen: 127.0.0.1:0 }", with: "admin: { listen: 127.0.0.1:0, token: \"${ADMIN_TOKEN}\" }"),
            environment: ["ADMIN_TOKEN": token])
        let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
        let client = CurlClient()
        for path in ["/", "/status.json", "/metrics", "/healthz", "/readyz"] {
            let refused = try await client.execute(HTTPRequest(url: admin + path))
            #expect(refused.status == 401 && refused.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "\(path)")
            #expect(try await client.execute(HTTPRequest(url: admin + path, headers: [("Authorization", "Bearer wrong")])).status == 401)
            #expect(
                try await client.execute(HTTPRequest(url: admin + path, headers: [("Authorization", "Bearer \(token)")])).status == 200, "\(path)")
        }
        #expect(!bridge.log.contains(token))
        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    /// A config with one managed subscription whose Graph is at `authority`, the public listener on `port`.
    static func managedConfig(tenant: String, clientId: String, secret: String, authority: String, port: Int) -> String {
        graphConfigSection(tenant: tenant, clientId: clientId, secret: secret, authority: authority) + serverConfigSection(publicPort: port) + """
        state:
          path: state.sqlite
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

    @Test("/readyz is 503 naming the subscription while Graph cannot be reached, and 200 once Graph has it")
    func readiness() async throws {
        let client = CurlClient()
        // Graph unreachable: the subscription cannot be made.
        let unreachable = TemporaryDirectory()
        let refusingGraph = try RefusingPort()
        defer { refusingGraph.close() }
        let lonely = try Self.start(
            unreachable,
            config: Self.managedConfig(
                tenant: "contoso.onmicrosoft.com", clientId: "11111111-2222-3333-4444-555555555555", secret: "s",
                authority: "http://127.0.0.1:\(refusingGraph.port)", port: try reservedLoopbackPort()))
        let lonelyAdmin = "http://127.0.0.1:\(try await lonely.adminPort())"
        #expect(
            try await lonely.waitForMetric("graph_bridge_subscription_upkeep_failures_total", labels: ["subscription": "inbox"]), "\(lonely.log)")
        let notReady = try await client.execute(HTTPRequest(url: lonelyAdmin + "/readyz"))
        #expect(notReady.status == 503)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(notReady.body)) as? [String: Any])
        #expect(body["status"] as? String == "not ready")
        #expect(((body["problems"] as? [String: String])?["subscriptions"])?.contains("inbox") == true, "\(notReady.bodyText)")
        // Not ready, but healthy: notifications are still taken.
        #expect(try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(try await lonely.port())/healthz")).status == 200)
        lonely.signal(SIGTERM)
        #expect(await lonely.waitForExit() == 0)

        // Graph is the simulator: ready once the subscription exists.
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--log-format", "json"], directory: directory.path)
        _ = try #require(await simulator.waitForOutput(containing: "baseUrl:"), "the simulator printed no URLs: \(simulator.log)")
        func value(_ key: String) throws -> String {
            try #require(simulator.output.split(separator: "\n").first { $0.contains("\(key):") }?.split(separator: " ").last.map(String.init))
        }
        let bridge = try Self.start(
            directory,
            config: Self.managedConfig(
                tenant: try value("tenant"), clientId: try value("clientId"), secret: try value("clientSecret"), authority: try value("authorityUrl"),
                port: try reservedLoopbackPort()))
        let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
        #expect(try await bridge.waitUntilReady(), "\(bridge.log)")
        #expect(try await client.execute(HTTPRequest(url: admin + "/readyz")).bodyText == #"{"status":"ready"}"#)
        #expect(try await client.execute(HTTPRequest(url: admin + "/healthz")).status == 200)

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
    }

    @Test("after traffic, every metric family in /metrics has a # HELP line with its own text")
    func metricsHelp() async throws {
        let directory = TemporaryDirectory()
        let bridge = try Self.start(directory)
        let port = try await bridge.port()
        let client = CurlClient()
        // Accepted, duplicate, forged, malformed, too large, lifecycle, a handshake with too long a token.
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("M", 1)) == 202)
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("M", 1)) == 202)
        let forged = String(decoding: EndToEndTests.notification("M", 2), as: UTF8.self).replacingOccurrences(of: "secretClientValue", with: "forged")
        #expect(try await EndToEndTests.post(client, port: port, body: Array(forged.utf8)) == 202)
        #expect(try await EndToEndTests.post(client, port: port, body: Array("{".utf8)) == 400)
        #expect(try await EndToEndTests.post(client, port: port, body: [UInt8](repeating: 0x20, count: 70_000)) == 413)
        #expect(
            try await EndToEndTests.post(
                client, port: port, path: "/lifecycle",
                body: Array(
                    #"{"value":[{"subscriptionId":"\#(EndToEndTests.subscriptionID)","clientState":"secretClientValue","lifecycleEvent":"missed"}]}"#
                        .utf8)) == 202)
        #expect(
            try await EndToEndTests.post(client, port: port, path: "/notifications?validationToken=\(String(repeating: "x", count: 1025))", body: [])
                == 400)
        #expect(try await eventually { jsonLines(directory.file("audit.jsonl")).count >= 2 })

        let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
        // Delivery metrics are recorded after the line is written: wait until they show.
        var text = ""
        #expect(
            try await eventually {
                text = try await client.execute(HTTPRequest(url: admin + "/metrics")).bodyText
                return text.contains("graph_bridge_deliveries_total")
            })
        let lines = text.split(separator: "\n").map(String.init)
        let typed = lines.enumerated().filter { $0.element.hasPrefix("# TYPE ") }
        #expect(typed.count >= 6, "\(text)")
        for (index, line) in typed {
            let name = line.split(separator: " ")[2]
            let help = index > 0 ? lines[index - 1] : ""
            #expect(help.hasPrefix("# HELP \(name) "), "\(name) has no HELP line")
            #expect(!help.contains("see docs/operations.md"), "\(name) has only the generic help text")
        }
        for family in [
            "graph_bridge_notifications_total", "graph_bridge_ack_seconds", "graph_bridge_requests_rejected_total",
            "graph_bridge_deliveries_total", "graph_bridge_lifecycle_events_total",
        ] {
            #expect(lines.contains { $0.hasPrefix("# HELP \(family) ") }, "\(family)")
        }
        #expect(text.contains(#"reason="token_too_long""#))

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }
}
