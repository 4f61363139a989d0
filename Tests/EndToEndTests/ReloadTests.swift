import CurlKit
import Foundation
import TestSupport
import Testing

/// `kill -HUP` on the real binary: the file is read again and applied without a restart (sinks,
/// routes, retry settings, subscriptions), an invalid one is refused with `FILE:LINE:COL` while the
/// running configuration keeps working, and keys that need a restart say so.
@Suite("reload on SIGHUP", .machine(.processes))
struct ReloadTests {
    /// Ends a test: the client closed, then the bridge must exit 0 within 10 s of SIGTERM.
    static func stop(_ bridge: BridgeProcess, _ client: CurlClient, sourceLocation: SourceLocation = #_sourceLocation) async {
        await client.shutdown()
        let stopped = await bridge.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(bridge.log)", sourceLocation: sourceLocation)
    }

    static func start(_ directory: TemporaryDirectory) async throws -> (BridgeProcess, port: Int, admin: Int) {
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        return (bridge, try await bridge.port(), try await bridge.adminPort())
    }

    /// Waits until `bridge` has applied `count` reloads, as its `/metrics` counts them
    /// (`graph_bridge_config_reloads_total{outcome="applied"}`).
    static func awaitReloads(_ bridge: BridgeProcess, count: Int) async throws -> Bool {
        try await bridge.waitForMetric("graph_bridge_config_reloads_total", labels: ["outcome": "applied"], atLeast: Double(count))
    }

    /// Whether a `configuration reloaded` line of `bridge` (one has been written when the reload is
    /// counted; the pipe may bring it a moment later) says `change`, such as `"bridge.sinks_changed":"plugin"`.
    static func reloadSaid(_ bridge: BridgeProcess, _ change: String) async throws -> Bool {
        try await eventually { bridge.hasLog { $0.contains(#""message":"configuration reloaded""#) && $0.contains(change) } }
    }

    static func metrics(_ client: CurlClient, admin: Int) async throws -> String {
        try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(admin)/metrics")).bodyText
    }

    /// Every resource number of `tag` in a file sink's lines.
    static func delivered(_ tag: String, _ directory: TemporaryDirectory, _ file: String) -> [Int] {
        EndToEndTests.numbers(tag, in: jsonLines(directory.file(file)))
    }

    @Test("a sink and a route added by SIGHUP take events at once, notifications posted during the reload all arrive, and a changed route applies")
    func addSinkAndChangeRoute() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", EndToEndTests.config())
        let (bridge, port, admin) = try await Self.start(directory)
        let client = CurlClient()
        for n in 1...5 { #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("reload", n)) == 202) }

        directory.write(
            "bridge.yaml",
            EndToEndTests.config()
                .replacingOccurrences(
                    of: "  audit: { type: file, path: audit.jsonl }",
                    with: "  audit: { type: file, path: audit.jsonl }\n  second: { type: file, path: second.jsonl }"
                )
                .replacingOccurrences(
                    of: "  - to: [audit]", with: "  - match: { changeType: created }\n    to: [second]\n    continue: true\n  - to: [audit]"))
        // The reload is asked for in the middle of a stream of notifications.
        for n in 6...60 {
            if n == 10 { bridge.signal(SIGHUP) }
            #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("reload", n)) == 202)
        }
        #expect(try await Self.awaitReloads(bridge, count: 1), "\(bridge.log)")
        let reloaded = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
        #expect(reloaded.contains(#""bridge.sinks_added":"second""#) && reloaded.contains(#""bridge.routes":"changed""#), "\(reloaded)")
        #expect(!reloaded.contains("sinks_removed") && !reloaded.contains("subscriptions_"), "\(reloaded)")
        for n in 61...65 { #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("reload", n)) == 202) }
        #expect(try await eventually { Set(Self.delivered("reload", directory, "second.jsonl")).isSuperset(of: 61...65) }, "\(bridge.log)")
        #expect(
            try await eventually { Set(Self.delivered("reload", directory, "audit.jsonl")) == Set(1...65) },
            "every notification reached audit: \(bridge.log)")
        #expect(Self.delivered("reload", directory, "audit.jsonl").count == 65, "each once")
        let status = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(admin)/status.json"))
        let sinks = try #require(try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])["sinks"] as? [[String: Any]]
        #expect(sinks?.compactMap { $0["name"] as? String } == ["audit", "second"], "the status page lists the running sinks: \(status.bodyText)")

        // The route changes: created events go to second only.
        directory.write(
            "bridge.yaml",
            EndToEndTests.config()
                .replacingOccurrences(
                    of: "  audit: { type: file, path: audit.jsonl }",
                    with: "  audit: { type: file, path: audit.jsonl }\n  second: { type: file, path: second.jsonl }"
                )
                .replacingOccurrences(of: "  - to: [audit]", with: "  - to: [second]"))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 2), "\(bridge.log)")
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("reload", 66)) == 202)
        #expect(try await eventually { Self.delivered("reload", directory, "second.jsonl").contains(66) }, "\(bridge.log)")
        #expect(!Self.delivered("reload", directory, "audit.jsonl").contains(66), "the old route no longer applies")
        let metrics = try await Self.metrics(client, admin: admin)
        #expect(PrometheusText.value(in: metrics, "graph_bridge_config_reloads_total", labels: ["outcome": "applied"]) == 2, "\(metrics)")
        #expect(metrics.contains("# HELP graph_bridge_config_reloads_total Configuration reloads"), "\(metrics)")
        #expect(bridge.log.components(separatedBy: #""message":"starting""#).count == 2, "one start, no restart")

        await Self.stop(bridge, client)
    }

    @Test("a sink removed by SIGHUP: its queue becomes dead letters under its old name, and its delivery in flight finishes")
    func removeSinkWithQueue() async throws {
        let directory = TemporaryDirectory()
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            // Two failures (retried in an hour: they stay queued), then an answer that takes 3 s: in flight during the reload.
            let script = #"{"path": "/hook", "responses": [{"status": 500}, {"status": 500}, {"status": 200, "delay_ms": 3000}]}"#
            #expect(
                try await client.execute(HTTPRequest(method: "POST", url: receiver.url("/_control/script"), body: Array(script.utf8))).status == 200)
            let withHook = EndToEndTests.config()
                .replacingOccurrences(
                    of: "  audit: { type: file, path: audit.jsonl }",
                    with: """
                          audit: { type: file, path: audit.jsonl }
                          hook: { type: webhook, url: "\(receiver.url("/hook"))", timeout: 10s, concurrency: 1, retry: { initialBackoff: 1h, maxBackoff: 1h } }
                        """
                )
                .replacingOccurrences(of: "to: [audit]", with: "to: [audit, hook]")
            directory.write("bridge.yaml", withHook)
            let (bridge, port, admin) = try await Self.start(directory)
            func awaitHook(_ count: Int) async throws {
                let answer = try await client.execute(HTTPRequest(url: receiver.url("/_control/await?count=\(count)&path=/hook&timeout_ms=15000")))
                #expect(answer.status == 200, "\(bridge.log)")
            }
            for n in 1...3 {
                #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("gone", n)) == 202)
                try await awaitHook(n)
            }
            // gone-3 is at the webhook now, its answer 3 s away.
            directory.write("bridge.yaml", EndToEndTests.config())
            bridge.signal(SIGHUP)
            #expect(try await Self.awaitReloads(bridge, count: 1), "\(bridge.log)")
            let reloaded = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
            #expect(reloaded.contains(#""bridge.sinks_removed":"hook""#) && reloaded.contains(#""bridge.routes":"changed""#), "\(reloaded)")
            let retired = try #require(await bridge.waitForLog(containing: "its queued deliveries are now dead letters"))
            #expect(retired.contains(#""bridge.sink":"hook""#) && retired.contains(#""bridge.deliveries":"2""#), "\(retired)")

            // The dead letters are gone-1 and gone-2, under the old name; gone-3 was delivered.
            let events = try jsonLines(directory.file("audit.jsonl")).map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            func eventID(_ n: Int) -> String? { events.first { ($0["resource"] as? String)?.hasSuffix("/gone-\(n)") == true }?["id"] as? String }
            let list = try await runToCompletion(
                ["dead-letters", "list", "--config", "bridge.yaml", "--sink", "hook"], directory: directory.path,
                environment: EndToEndTests.environment)
            #expect(list.0 == 0, "\(list.2)")
            let rows = list.1.split(separator: "\n").filter { $0.contains("sink=hook") && $0.contains("the sink was removed from the configuration") }
            #expect(rows.count == 2, "\(list.1)")
            for n in 1...2 { #expect(rows.contains { row in eventID(n).map { row.contains("event=\($0)") } ?? false }, "gone-\(n): \(list.1)") }
            #expect(!rows.contains { row in eventID(3).map { row.contains("event=\($0)") } ?? true }, "\(list.1)")
            let metrics = try await Self.metrics(client, admin: admin)
            #expect(
                metrics.contains(#"graph_bridge_deliveries_total{sink="hook",outcome="success"} 1"#)
                    || metrics.contains(#"graph_bridge_deliveries_total{outcome="success",sink="hook"} 1"#),
                "the delivery in flight finished: \(metrics)")
            #expect(
                metrics.contains(#"graph_bridge_dead_letters{sink="hook"} 2"#) && metrics.contains(#"graph_bridge_queue_depth{sink="hook"} 0"#),
                "\(metrics)")
            #expect(try receiver.recordedRequests().filter { $0.path == "/hook" }.count == 3, "nothing more went to the removed sink")
            #expect(!bridge.log.contains("stay queued for the next start"), "the reload waited for the delivery in flight: \(bridge.log)")

            // New notifications reach the remaining sink only.
            #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("gone", 4)) == 202)
            #expect(try await eventually { Self.delivered("gone", directory, "audit.jsonl").contains(4) })
            await Self.stop(bridge, client)
        }
    }

    @Test(
        "an invalid file is refused with FILE:LINE:COL and the running configuration keeps working; a restart-only key says so while the rest reloads"
    )
    func invalidAndRestartOnly() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", EndToEndTests.config())
        let launched = Date().timeIntervalSince1970
        let (bridge, port, admin) = try await Self.start(directory)
        let client = CurlClient()
        // As Prometheus counts its own, the file loaded at start is the last successful reload.
        let successful = "graph_bridge_config_last_reload_successful"
        let successAt = "graph_bridge_config_last_reload_success_timestamp_seconds"
        #expect(try await bridge.waitForMetric(successful, atLeast: 1), "\(bridge.log)")
        let loadedAt = try #require(try await bridge.metric(successAt))
        #expect(loadedAt >= launched - 1 && loadedAt <= Date().timeIntervalSince1970 + 1, "\(loadedAt)")

        directory.write("bridge.yaml", EndToEndTests.config().replacingOccurrences(of: "  - to: [audit]", with: "  - to: [audit, nowhere]"))
        bridge.signal(SIGHUP)
        let refused = try #require(await bridge.waitForLog(containing: "the configuration file is invalid"), "\(bridge.log)")
        #expect(refused.contains(#""bridge.errors":"1""#), "\(refused)")
        #expect(bridge.hasLog { $0.contains("bridge.yaml:18:17: route sends to undefined sink 'nowhere'") }, "\(bridge.log)")
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("kept", 1)) == 202)
        #expect(
            try await eventually { Self.delivered("kept", directory, "audit.jsonl") == [1] },
            "the running configuration still delivers: \(bridge.log)")
        let afterInvalid = try await Self.metrics(client, admin: admin)
        #expect(PrometheusText.value(in: afterInvalid, "graph_bridge_config_reloads_total", labels: ["outcome": "invalid"]) == 1, "\(afterInvalid)")
        #expect(PrometheusText.value(in: afterInvalid, successful) == 0, "the last reload was refused: \(afterInvalid)")
        #expect(PrometheusText.value(in: afterInvalid, successAt) == loadedAt, "the configuration running is the one loaded at start")

        // server.listen needs a restart; the new sink and route apply anyway. (The new port is held
        // by the test, so nothing could move to it.)
        let other = try RefusingPort()
        defer { other.close() }
        directory.write(
            "bridge.yaml",
            EndToEndTests.config()
                .replacingOccurrences(of: "listen: 127.0.0.1:0\n  maxBodyBytes", with: "listen: 127.0.0.1:\(other.port)\n  maxBodyBytes")
                .replacingOccurrences(
                    of: "  audit: { type: file, path: audit.jsonl }",
                    with: "  audit: { type: file, path: audit.jsonl }\n  extra: { type: file, path: extra.jsonl }"
                )
                .replacingOccurrences(of: "  - to: [audit]", with: "  - to: [audit, extra]"))
        let asked = Date().timeIntervalSince1970
        bridge.signal(SIGHUP)
        #expect(try await bridge.waitForMetric(successful, atLeast: 1), "applied: \(bridge.log)")
        let reloadedAt = try #require(try await bridge.metric(successAt))
        #expect(reloadedAt >= asked - 1 && reloadedAt > loadedAt, "\(reloadedAt) after \(loadedAt)")
        let restart = try #require(await bridge.waitForLog(containing: "need a restart"), "\(bridge.log)")
        #expect(restart.contains(#""bridge.restart_needed":"server.listen""#), "\(restart)")
        let reloaded = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
        #expect(reloaded.contains(#""bridge.sinks_added":"extra""#), "\(reloaded)")
        #expect(
            try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("kept", 2)) == 202, "still on the port it started with")
        #expect(try await eventually { Self.delivered("kept", directory, "extra.jsonl") == [2] }, "\(bridge.log)")

        await Self.stop(bridge, client)
    }

    @Test("an exec sink a reload leaves unchanged keeps its plugin process; a changed one gets a new process")
    func execPluginKeptOrRestarted() async throws {
        let directory = TemporaryDirectory()
        directory.write(
            "plugin.py",
            """
            import json, os, sys
            with open("pids.txt", "a") as pids:
                pids.write(f"{os.getpid()}\\n")
            for line in sys.stdin:
                event = json.loads(line)
                with open("plugin.jsonl", "a") as seen:
                    seen.write(line)
                print(json.dumps({"id": event["id"], "status": "ok"}), flush=True)

            """)
        func config(timeout: String, route: String) -> String {
            EndToEndTests.config()
                .replacingOccurrences(
                    of: "  audit: { type: file, path: audit.jsonl }",
                    with: "  audit: { type: file, path: audit.jsonl }\n  plugin: { type: exec, command: [python3, plugin.py], timeout: \(timeout) }"
                )
                .replacingOccurrences(of: "  - to: [audit]", with: route)
        }
        func pids() -> [String] { jsonLines(directory.file("pids.txt")) }
        directory.write("bridge.yaml", config(timeout: "10s", route: "  - to: [audit, plugin]"))
        let (bridge, port, _) = try await Self.start(directory)
        let client = CurlClient()
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("exec", 1)) == 202)
        #expect(try await eventually { Self.delivered("exec", directory, "plugin.jsonl") == [1] }, "\(bridge.log)")
        #expect(pids().count == 1)

        // Only the routes change: the plugin keeps its process.
        directory.write("bridge.yaml", config(timeout: "10s", route: "  - match: { changeType: created }\n    to: [plugin, audit]"))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 1), "\(bridge.log)")
        let kept = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
        #expect(kept.contains(#""bridge.routes":"changed""#) && !kept.contains("sinks_changed"), "\(kept)")
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("exec", 2)) == 202)
        #expect(try await eventually { Self.delivered("exec", directory, "plugin.jsonl") == [1, 2] }, "\(bridge.log)")
        #expect(pids().count == 1, "the same plugin process: \(pids())")

        // The plugin's keys change: its process is stopped and a new one started.
        directory.write("bridge.yaml", config(timeout: "20s", route: "  - match: { changeType: created }\n    to: [plugin, audit]"))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 2), "\(bridge.log)")
        #expect(try await Self.reloadSaid(bridge, #""bridge.sinks_changed":"plugin""#), "\(bridge.log)")
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("exec", 3)) == 202)
        #expect(try await eventually { Self.delivered("exec", directory, "plugin.jsonl") == [1, 2, 3] }, "\(bridge.log)")
        #expect(pids().count == 2 && Set(pids()).count == 2, "a new plugin process: \(pids())")

        await Self.stop(bridge, client)
    }

    @Test("a receive-only subscription added by SIGHUP is accepted at once; one removed is dropped as unknown and forgotten")
    func receiveOnlySubscriptions() async throws {
        let directory = TemporaryDirectory()
        let secondID = "2f105c7d-2dc5-4530-97cd-4e7ae6534c02"
        let second = """
              - name: second-feed
                manage: false
                id: \(secondID)
                clientState: second-secret

            """
        func item(_ id: String, _ clientState: String, _ n: Int) -> [UInt8] {
            Array(
                #"{"value":[{"subscriptionId":"\#(id)","clientState":"\#(clientState)","changeType":"created","resource":"Users/1/Messages/feeds-\#(n)"}]}"#
                    .utf8)
        }
        directory.write("bridge.yaml", EndToEndTests.config())
        let (bridge, port, admin) = try await Self.start(directory)
        let client = CurlClient()
        #expect(try await EndToEndTests.post(client, port: port, body: item(secondID, "second-secret", 1)) == 202)

        directory.write("bridge.yaml", EndToEndTests.config().replacingOccurrences(of: "sinks:\n", with: second + "sinks:\n"))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 1), "\(bridge.log)")
        let added = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
        #expect(added.contains(#""bridge.subscriptions_added":"second-feed""#), "\(added)")
        #expect(try await EndToEndTests.post(client, port: port, body: item(secondID, "second-secret", 2)) == 202)
        #expect(
            try await eventually { Self.delivered("feeds", directory, "audit.jsonl") == [2] }, "only the one posted after the reload: \(bridge.log)")

        // audit-feed leaves the file: its notifications are dropped, and the state file forgets it.
        let onlySecond = EndToEndTests.config().replacingOccurrences(of: "sinks:\n", with: second + "sinks:\n")
            .replacingOccurrences(
                of: "  - name: audit-feed\n    manage: false\n    id: \(EndToEndTests.subscriptionID)\n    clientState: ${FEED_STATE}\n", with: "")
        #expect(!onlySecond.contains("audit-feed"))
        directory.write("bridge.yaml", onlySecond)
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 2), "\(bridge.log)")
        #expect(try await Self.reloadSaid(bridge, #""bridge.subscriptions_removed":"audit-feed""#), "\(bridge.log)")
        #expect(try await EndToEndTests.post(client, port: port, body: item(EndToEndTests.subscriptionID, "secretClientValue", 3)) == 202)
        #expect(try await EndToEndTests.post(client, port: port, body: item(secondID, "second-secret", 4)) == 202)
        #expect(try await eventually { Self.delivered("feeds", directory, "audit.jsonl").contains(4) }, "\(bridge.log)")
        #expect(Self.delivered("feeds", directory, "audit.jsonl") == [2, 4], "the removed subscription's notification was dropped")
        let metrics = try await Self.metrics(client, admin: admin)
        #expect(
            PrometheusText.value(in: metrics, "graph_bridge_notifications_total", labels: ["subscription": "unknown", "outcome": "unknown_subscription"]) == 2,
            "\(metrics)")
        let listing = try await runToCompletion(
            ["subscriptions", "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(listing.0 == 0 && listing.1.contains("second-feed") && !listing.1.contains("audit-feed"), "\(listing.1)\(listing.2)")

        await Self.stop(bridge, client)
    }

    @Test(
        "a managed subscription added by SIGHUP is created at Graph and one removed is deleted there, its delta gauge with it; the one kept is reused"
    )
    func managedSubscriptions() async throws {
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--log-format", "json"], directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let simulatorPort = try #require(banner.authorityURL.split(separator: ":").last.map(String.init))
        let port = try reservedLoopbackPort()
        func config(_ mailboxes: [String]) -> String {
            let subscriptions = mailboxes.map { mailbox in
                "  - { name: \(mailbox), resource: \"users/\(mailbox)@contoso.com/mailFolders('Inbox')/messages\", changeTypes: [created], resync: delta }"
            }
            return banner.graphSection + serverConfigSection(publicPort: port) + """
                state:
                  path: state.sqlite
                subscriptions:
                \(subscriptions.joined(separator: "\n"))
                sinks:
                  audit: { type: file, path: audit.jsonl }
                routes:
                  - to: [audit]

                """
        }
        directory.write("bridge.yaml", config(["alice"]))
        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        #expect(try await bridge.waitUntilReady(), "\(bridge.log)")
        let graph = SimulatedGraph(banner: banner)
        let first = try await graph.subscriptions()
        #expect(first.map(\.resource) == ["users/alice@contoso.com/mailFolders('Inbox')/messages"], "\(first)")
        let delta = "graph_bridge_delta_last_query_timestamp_seconds"
        #expect(try await bridge.waitForMetric(delta, labels: ["subscription": "alice"]), "alice's delta baseline: \(bridge.log)")

        // bob is added: created at Graph; alice's is reused, not created again.
        directory.write("bridge.yaml", config(["alice", "bob"]))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 1), "\(bridge.log)")
        let added = try #require(await bridge.waitForLog(containing: "configuration reloaded"), "\(bridge.log)")
        #expect(added.contains(#""bridge.subscriptions_added":"bob""#), "\(added)")
        let created = ["operation": "create_subscription", "status": "201"]
        #expect(try await bridge.waitForMetric("graph_bridge_graph_requests_total", labels: created, atLeast: 2), "bob's created: \(bridge.log)")
        let both = try await graph.subscriptions()
        #expect(
            Set(both.map(\.resource)) == [
                "users/alice@contoso.com/mailFolders('Inbox')/messages", "users/bob@contoso.com/mailFolders('Inbox')/messages",
            ])
        #expect(both.first { $0.resource.contains("alice") }?.id == first.first?.id, "alice's subscription was kept")
        #expect(try await bridge.metric("graph_bridge_graph_requests_total", labels: created) == 2, "alice's was not created again")
        #expect(try await bridge.waitForMetric(delta, labels: ["subscription": "bob"]), "bob's delta baseline: \(bridge.log)")

        // alice is removed: deleted at Graph; a mail to bob still arrives.
        directory.write("bridge.yaml", config(["bob"]))
        bridge.signal(SIGHUP)
        #expect(try await Self.awaitReloads(bridge, count: 2), "\(bridge.log)")
        #expect(
            try await bridge.waitForMetric("graph_bridge_graph_requests_total", labels: ["operation": "delete_subscription", "status": "204"]),
            "alice's deleted at Graph: \(bridge.log)")
        let left = try await graph.subscriptions()
        #expect(left.map(\.resource) == ["users/bob@contoso.com/mailFolders('Inbox')/messages"], "\(left)")
        // Its deltaLink is forgotten, and its gauge goes with it; bob's stays.
        #expect(try await eventually { try await bridge.metric(delta, labels: ["subscription": "alice"]) == nil }, "\(bridge.log)")
        #expect(try await bridge.metric(delta, labels: ["subscription": "bob"]) != nil)
        let mail = try await runToCompletion(
            ["simulator", "mail", "--port", simulatorPort, "--to", "bob@contoso.com", "--from", "alice@contoso.com"], directory: directory.path)
        #expect(mail.0 == 0, "\(mail.1)\(mail.2)")
        #expect(try await eventually { jsonLines(directory.file("audit.jsonl")).contains { $0.contains("\"name\":\"bob\"") } }, "\(bridge.log)")

        let stopped = await bridge.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(bridge.log)")
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
    }
}

/// The simulator's Graph API with the banner's client credentials: what subscriptions Graph holds.
struct SimulatedGraph {
    var banner: SimulatorBanner

    struct Subscription: CustomStringConvertible {
        var id: String
        var resource: String
        var description: String { "\(id) \(resource)" }
    }

    func subscriptions() async throws -> [Subscription] {
        let client = CurlClient()
        do {
            let listed = try await subscriptions(client)
            await client.shutdown()
            return listed
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private func subscriptions(_ client: CurlClient) async throws -> [Subscription] {
        let form =
            "client_id=\(banner.clientID)&client_secret=\(banner.clientSecret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            + "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials"
        let tokenResponse = try await client.execute(
            HTTPRequest(
                method: "POST", url: "\(banner.authorityURL)/\(banner.tenant)/oauth2/v2.0/token",
                headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8)))
        let token = try #require(
            (try JSONSerialization.jsonObject(with: Data(tokenResponse.body)) as? [String: Any])?["access_token"] as? String,
            "\(tokenResponse.bodyText)")
        let listed = try await client.execute(
            HTTPRequest(url: "\(banner.authorityURL)/v1.0/subscriptions", headers: [("Authorization", "Bearer \(token)")]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(listed.body)) as? [String: Any], "\(listed.bodyText)")
        let value = try #require(object["value"] as? [[String: Any]], "\(listed.bodyText)")
        return value.compactMap { item in
            guard let id = item["id"] as? String, let resource = item["resource"] as? String else { return nil }
            return Subscription(id: id, resource: resource)
        }
    }
}
