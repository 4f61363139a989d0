import CurlKit
import Foundation
import TestSupport
import Testing

/// Rotating the rich-notification key through the real binary and `graph-bridge simulator`
/// (SPEC section 9, docs/graph-setup.md): a restart with the new key pair as `encryption:` and
/// the old one under `previous:` moves the subscription by PATCH, a notification Graph
/// encrypted for the old key before the restart still decrypts, and later ones use the new key.
@Suite("rich notifications: key rotation through the binary", .machine(.processes))
struct KeyRotationEndToEndTests {
    struct Graph {
        var authority: String
        var tenant: String
        var clientID: String
        var secret: String
    }

    static func config(graph: Graph, port: Int, current: String, previous: [String]) -> String {
        let previousLines =
            previous.isEmpty
            ? ""
            : "\n      previous:\n"
                + previous.map {
                    "        - { certificate: \($0).pem, key: \($0).key, id: \($0) }"
                }.joined(separator: "\n")
        return graphConfigSection(tenant: graph.tenant, clientId: graph.clientID, secret: graph.secret, authority: graph.authority) + serverConfigSection(publicPort: port) + """
            state:
              path: state.sqlite
            subscriptions:
              - name: inbox
                resource: users/alice@contoso.com/mailFolders('Inbox')/messages?$select=subject
                changeTypes: [created]
                includeResourceData: true
                encryption:
                  certificate: \(current).pem
                  key: \(current).key
                  id: \(current)\(previousLines)
            sinks:
              audit: { type: file, path: audit.jsonl }
            routes:
              - to: [audit]

            """
    }

    /// The decrypted subjects in the audit file, with the Graph subscription id each came through.
    static func audited(_ path: String) -> [(subject: String?, subscriptionID: String?)] {
        jsonLines(path).compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            let subject = (object["data"] as? [String: Any])?["subject"] as? String
            return (subject, (object["subscription"] as? [String: Any])?["id"] as? String)
        }
    }

    @Test(
        "restart with the new key current and the old one previous: one PATCH, no recreate; an old-key notification still decrypts, new ones use the new key"
    )
    func rotateByRestart() async throws {
        let directory = TemporaryDirectory()
        for id in ["enc-old", "enc-new"] {
            try await runCommand([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.file("\(id).key"),
                "-out", directory.file("\(id).pem"), "-days", "1", "-subj", "/CN=graph-bridge-\(id)",
            ])
            #expect(chmod(directory.file("\(id).key"), 0o600) == 0)
        }
        // Retries every second, so a notification the stopped bridge could not take arrives after the restart.
        let simulator = try BridgeProcess(
            ["simulator", "--log-format", "json", "--retry-schedule", Array(repeating: "1s", count: 60).joined(separator: ",")],
            directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let graph = Graph(authority: banner.authorityURL, tenant: banner.tenant, clientID: banner.clientID, secret: banner.clientSecret)
        let simulatorPort = try #require(banner.authorityURL.split(separator: ":").last.map(String.init))
        let port = try reservedLoopbackPort()  // the same public URL across restarts, as in production
        let audit = directory.file("audit.jsonl")
        func mail(_ subject: String) async throws {
            let sent = try await runToCompletion(
                ["simulator", "mail", "--port", simulatorPort, "--to", "alice@contoso.com", "--subject", subject], directory: directory.path)
            #expect(sent.0 == 0, "\(sent.2)")
        }

        // The old key is the current one: the subscription is created for it.
        directory.write("bridge.yaml", Self.config(graph: graph, port: port, current: "enc-old", previous: []))
        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        #expect(try await first.waitUntilReady(), "\(first.log)")
        try await mail("before")
        #expect(try await eventually { Self.audited(audit).count == 1 }, "\(first.log)")
        let stoppedFirst = await first.terminate(within: .seconds(10))
        #expect(stoppedFirst.inTime && stoppedFirst.code == 0, "\(first.log)")

        // While the bridge is down, Graph encrypts a notification for the old key and keeps retrying it.
        try await mail("while down")

        // The new key pair is current, the old one previous; `check` accepts the file as `run` does.
        directory.write("bridge.yaml", Self.config(graph: graph, port: port, current: "enc-new", previous: ["enc-old"]))
        let checked = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
        #expect(checked.0 == 0, "\(checked.2)")
        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        // The subscription moved to the new certificate: Graph answered the PATCH.
        #expect(
            try await second.waitForMetric("graph_bridge_graph_requests_total", labels: ["operation": "update_encryption_certificate", "status": "200"]),
            "\(second.log)")
        #expect(try await eventually { Self.audited(audit).count == 2 }, "the old-key notification was not routed: \(second.log)")
        try await mail("after")
        #expect(try await eventually { Self.audited(audit).count == 3 }, "\(second.log)")

        let events = Self.audited(audit)
        #expect(events.map(\.subject) == ["before", "while down", "after"], "every one decrypted into data")
        #expect(Set(events.compactMap(\.subscriptionID)).count == 1 && events.allSatisfy { $0.subscriptionID != nil }, "one subscription throughout")

        let client = CurlClient()
        let metrics = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(try await second.adminPort())/metrics")).bodyText
        await client.shutdown()
        let decrypted = "graph_bridge_rich_notifications_decrypted_total"
        #expect(PrometheusText.value(in: metrics, decrypted, labels: ["encryption_id": "enc-old"]) == 1, "the late retry decrypted with the previous key: \(metrics)")
        #expect(PrometheusText.value(in: metrics, decrypted, labels: ["encryption_id": "enc-new"]) == 1, "the new mail was encrypted for the new key: \(metrics)")
        let requests = "graph_bridge_graph_requests_total"
        #expect(PrometheusText.value(in: metrics, requests, labels: ["operation": "update_encryption_certificate", "status": "200"]) == 1, "one PATCH")
        #expect(PrometheusText.value(in: metrics, requests, labels: ["operation": "create_subscription"]) == nil, "no recreate")
        #expect(PrometheusText.value(in: metrics, requests, labels: ["operation": "delete_subscription"]) == nil, "nothing deleted")

        let stopped = await second.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(second.log)")
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
    }

    @Test("check loads the previous key pairs like the current one: a bad one fails positioned at its entry, a readable key is warned about")
    func checkLoadsPreviousKeys() async throws {
        let directory = TemporaryDirectory()
        try await runCommand([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.file("enc-new.key"),
            "-out", directory.file("enc-new.pem"), "-days", "1", "-subj", "/CN=graph-bridge-enc-new",
        ])
        #expect(chmod(directory.file("enc-new.key"), 0o600) == 0)
        directory.write("enc-old.pem", "not a certificate\n")
        directory.write("enc-old.key", "not a key\n")
        #expect(chmod(directory.file("enc-old.key"), 0o600) == 0)
        let graph = Graph(
            authority: "http://127.0.0.1:9", tenant: "contoso.onmicrosoft.com", clientID: "11111111-2222-3333-4444-555555555555", secret: "s")
        directory.write("bridge.yaml", Self.config(graph: graph, port: 8080, current: "enc-new", previous: ["enc-old"]))
        let bad = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
        #expect(bad.0 == 1)
        // Line 23: the previous entry; positioned at its certificate.
        #expect(
            bad.2.range(of: #"bridge.yaml:23:\d+: subscription 'inbox': encryption: previous key 'enc-old':"#, options: .regularExpression) != nil,
            "\(bad.2)")

        // A good previous pair whose key others can read: check passes and warns, as for the current key.
        try await runCommand([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.file("enc-old.key"),
            "-out", directory.file("enc-old.pem"), "-days", "1", "-subj", "/CN=graph-bridge-enc-old",
        ])
        #expect(chmod(directory.file("enc-old.key"), 0o644) == 0)
        let warned = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
        #expect(warned.0 == 0, "\(warned.2)")
        #expect(warned.2.contains("warning: subscription 'inbox': encryption.previous 'enc-old' key"), "\(warned.2)")
    }

}
