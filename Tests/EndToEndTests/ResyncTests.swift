import Foundation
import TestSupport
import Testing

/// `resync: delta` through the real binary: `check` refuses it where Graph has no delta query;
/// `run` takes the baseline at create (no events for what is there) and routes what follows as usual.
@Suite("resync: delta", .machine(.processes))
struct ResyncTests {
    static func config(resource: String, graph: String = "https://graph.example.test", tenant: String = "contoso.onmicrosoft.com",
                       clientId: String = "11111111-2222-3333-4444-555555555555", secret: String = "s3cret", port: Int = 0) -> String {
        graphConfigSection(tenant: tenant, clientId: clientId, secret: secret, authority: graph) + serverConfigSection(publicPort: port) + """
        state:
          path: state.sqlite
        subscriptions:
          - name: inbox
            resource: \(resource)
            changeTypes: [created, updated, deleted]
            resync: delta
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - to: [audit]

        """
    }

    @Test("check refuses resync: delta on all of a mailbox's messages, at the resync: value, and accepts it on a folder")
    func checkRefusesUnsupported() async throws {
        let directory = TemporaryDirectory()
        directory.write("bad.yaml", Self.config(resource: "users/alice@contoso.com/messages"))
        let bad = try await runToCompletion(["check", "--config", "bad.yaml"], directory: directory.path)
        #expect(bad.0 == 1)
        #expect(bad.2.contains("bad.yaml:17:13: subscription 'inbox': resync: delta needs the messages of one folder"), "\(bad.2)")
        directory.write("good.yaml", Self.config(resource: "users/alice@contoso.com/mailFolders('Inbox')/messages"))
        let good = try await runToCompletion(["check", "--config", "good.yaml"], directory: directory.path)
        #expect(good.0 == 0, "\(good.2)")
    }

    @Test("run takes the delta baseline after the create without emitting events, then routes notifications as usual")
    func baselineThroughTheBinary() async throws {
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--log-format", "json"], directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let (authority, tenant, clientId, secret) = (banner.authorityURL, banner.tenant, banner.clientID, banner.clientSecret)
        let simulatorPort = try #require(authority.split(separator: ":").last.map(String.init))
        let port = try reservedLoopbackPort()
        directory.write("bridge.yaml", Self.config(
            resource: "users/alice@contoso.com/mailFolders('Inbox')/messages", graph: authority, tenant: tenant, clientId: clientId, secret: secret, port: port))
        // A mail is there before the subscription: the baseline lists it, and no event is made for it.
        let before = try await runToCompletion(["simulator", "mail", "--port", simulatorPort, "--to", "alice@contoso.com"], directory: directory.path)
        #expect(before.0 == 0, "\(before.2)")

        let launched = Date()
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        // The baseline is taken once its deltaLink is stored: the gauge says when its query began.
        let baseline = "graph_bridge_delta_last_query_timestamp_seconds"
        #expect(try await bridge.waitForMetric(baseline, labels: ["subscription": "inbox"], atLeast: launched.timeIntervalSince1970 - 1), "\(bridge.log)")
        let after = try await runToCompletion(["simulator", "mail", "--port", simulatorPort, "--to", "alice@contoso.com"], directory: directory.path)
        #expect(after.0 == 0, "\(after.2)")
        let audit = directory.file("audit.jsonl")
        #expect(try await eventually { jsonLines(audit).count >= 1 }, "\(bridge.log)")
        let lines = jsonLines(audit)
        #expect(lines.count == 1 && !lines[0].contains("resync"), "only the mail after the baseline, as Graph notified it: \(lines)")
        let stopped = await bridge.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(bridge.log)")
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
    }
}
