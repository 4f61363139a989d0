import CurlKit
import Foundation
import Synchronization
import TestSupport
import Testing

/// The restart window (SPEC section 7): the subscriptions in the state file are known to the
/// listener before it opens, so a notification that arrives while the bridge is still talking to
/// Graph (here: a Graph that never answers) is accepted and routed, not dropped as unknown.
@Suite("restart window", .machine(.processes))
struct RestartWindowTests {
    static func config(tenant: String, clientId: String, secret: String, graph: String, listen: Int, publicPort: Int, fetch: Bool = false) -> String {
        graphConfigSection(tenant: tenant, clientId: clientId, secret: secret, authority: graph) + serverConfigSection(listen: "127.0.0.1:\(listen)", publicUrl: "http://127.0.0.1:\(publicPort)") + """
        state:
          path: state.sqlite
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/mailFolders('Inbox')/messages
            changeTypes: [created]
        \(fetch ? "    fetch: [subject]" : "")
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - to: [audit]

        """
    }

    /// The stored subscription's Graph id and clientState, read from the state file as it is.
    static func storedSubscription(_ path: String) async throws -> (id: String, clientState: String) {
        let script = "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute('select graph_id, client_state from subscriptions').fetchone(); print(r[0]); print(r[1])"
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        try #require(process.terminationStatus == 0 && lines.count == 2, "could not read the state file: \(lines)")
        return (lines[0], lines[1])
    }

    @Test("after a restart, a notification for the stored subscription is routed while Graph does not answer; SIGTERM still ends the bridge in time")
    func storedSubscriptionAcceptedBeforeReconcile() async throws {
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--log-format", "json"], directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let (authority, tenant, clientId, secret) = (banner.authorityURL, banner.tenant, banner.clientID, banner.clientSecret)
        let publicPort = try reservedLoopbackPort()

        // First run: the subscription is created (the simulator validates the live listener).
        directory.write("bridge.yaml", Self.config(tenant: tenant, clientId: clientId, secret: secret, graph: authority, listen: publicPort, publicPort: publicPort))
        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        #expect(try await first.waitUntilReady(), "\(first.log)")
        first.signal(SIGTERM)
        #expect(await first.waitForExit() == 0)
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
        let stored = try await Self.storedSubscription(directory.file("state.sqlite"))

        // Second run: Graph accepts connections and never answers, so the reconcile never ends.
        let silentGraph = try SilentListener()
        defer { withExtendedLifetime(silentGraph) {} }  // held to the end, past its last use
        directory.write("bridge.yaml", Self.config(
            tenant: tenant, clientId: clientId, secret: secret, graph: "http://127.0.0.1:\(silentGraph.port)", listen: 0, publicPort: publicPort))
        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        let port = try await second.port()
        let client = CurlClient()
        func item(_ subscription: String, _ clientState: String, _ tag: String) -> [UInt8] {
            Array(#"{"value":[{"subscriptionId":"\#(subscription)","clientState":"\#(clientState)","changeType":"created","resource":"Users/1/Messages/\#(tag)","resourceData":{"@odata.etag":"1"}}]}"#.utf8)
        }
        // A subscription the store does not know is still dropped; the stored one is routed.
        #expect(try await EndToEndTests.post(client, port: port, body: item("00000000-0000-0000-0000-000000000000", stored.clientState, "unknown-1")) == 202)
        #expect(try await EndToEndTests.post(client, port: port, body: item(stored.id, stored.clientState, "stored-1")) == 202)
        let audit = directory.file("audit.jsonl")
        #expect(try await eventually { jsonLines(audit).count >= 1 }, "\(second.log)")
        let lines = jsonLines(audit)
        #expect(lines.count == 1 && lines[0].contains("stored-1") && lines[0].contains(#""name":"inbox""#), "\(lines)")
        #expect(!second.hasLog { $0.contains("reusing Graph subscription") }, "Graph never answered, so the reconcile had not finished")
        // SIGTERM ends it within 10 s although its calls to Graph hang (token, GET of the subscription).
        let stopped = await second.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(second.log)")

        // With fetch:, routing waits on Graph; SIGTERM cancels that and keeps the event journaled.
        directory.write("bridge.yaml", Self.config(
            tenant: tenant, clientId: clientId, secret: secret, graph: "http://127.0.0.1:\(silentGraph.port)", listen: 0, publicPort: publicPort,
            fetch: true))
        let third = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        let thirdPort = try await third.port()
        #expect(try await EndToEndTests.post(client, port: thirdPort, body: item(stored.id, stored.clientState, "stored-2")) == 202)
        let stoppedWhileFetching = await third.terminate(within: .seconds(10))
        #expect(stoppedWhileFetching.inTime && stoppedWhileFetching.code == 0, "\(third.log)")
        #expect(jsonLines(audit).count == 1, "not routed: the fetch never finished")

        // Nothing acknowledged was lost: without fetch:, the next start routes it.
        directory.write("bridge.yaml", Self.config(
            tenant: tenant, clientId: clientId, secret: secret, graph: "http://127.0.0.1:\(silentGraph.port)", listen: 0, publicPort: publicPort))
        let fourth = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        _ = try await fourth.port()
        #expect(try await eventually { jsonLines(audit).count >= 2 }, "\(fourth.log)")
        #expect(jsonLines(audit).last?.contains("stored-2") == true)
        await client.shutdown()
        let stoppedLast = await fourth.terminate(within: .seconds(10))
        #expect(stoppedLast.inTime && stoppedLast.code == 0, "\(fourth.log)")
    }
}
