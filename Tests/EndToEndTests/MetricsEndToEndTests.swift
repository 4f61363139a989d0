import CurlKit
import Foundation
import GraphSimulator
import Logging
import ServiceLifecycle
import TestSupport
import Testing

/// Every metric of SPEC section 11, scraped from `/metrics` of a real `graph-bridge run` after the
/// traffic that moves it. Graph is the simulator, in this process, so the test can refuse a create,
/// miss notifications, and send lifecycle events.
@Suite("metrics end to end", .serialized, .machine(.processes))
struct MetricsEndToEndTests {
    static let plugin = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/plugins/test-plugin.py").path

    static func config(simulator: GraphSimulator, port: Int, refusing: Int) -> String {
        simulator.graphSection + serverConfigSection(publicPort: port) + """
        state:
          path: state.sqlite
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/mailFolders('Inbox')/messages
            changeTypes: [created, updated]
            fetch: [subject]
            resync: delta
          - name: audit-feed
            manage: false
            id: \(EndToEndTests.subscriptionID)
            clientState: ${FEED_STATE}
        sinks:
          audit: { type: file, path: audit.jsonl }
          broken:
            type: webhook
            url: http://127.0.0.1:\(refusing)/hook
            retry: { initialBackoff: 100ms, maxBackoff: 200ms, maxAge: 500ms }
          stuck:
            type: webhook
            url: http://127.0.0.1:\(refusing)/stuck
            retry: { initialBackoff: 1h, maxBackoff: 1h, maxAge: 1d }
          plugin:
            type: exec
            command: [python3, \(plugin), --exit-after, "1"]
        routes:
          - match: { subscription: audit-feed }
            to: [audit, broken, stuck, plugin]
          - to: [audit]

        """
    }

    @Test(
        "each SPEC section 11 metric moves with its traffic; the expiry gauge is removed when Graph removes the subscription and comes back with it")
    func everyMetric() async throws {
        try await withInProcessSimulator { simulator in
            let directory = TemporaryDirectory()
            let port = try reservedLoopbackPort()
            let refusingHook = try RefusingPort()
            defer { refusingHook.close() }
            // The first create is refused: an upkeep failure; the retry two seconds later creates it.
            simulator.injectFault(.error(status: 400, code: "InvalidRequest", message: "refused by the test"), on: .createSubscription)
            directory.write("bridge.yaml", Self.config(simulator: simulator, port: port, refusing: refusingHook.port))
            let launched = Date()
            let bridge = try BridgeProcess(
                ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
            let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
            let client = CurlClient()
            var text = ""
            /// Scrapes until `condition` holds (30 s at most); records a failure naming `what` otherwise.
            func scrape(_ what: String, _ condition: @escaping (String) -> Bool) async throws {
                let held = try await eventually(timeout: .seconds(30)) {
                    text = try await client.execute(HTTPRequest(url: admin + "/metrics")).bodyText
                    return condition(text)
                }
                #expect(held, "\(what):\n\(text)\n\(bridge.log.suffix(4000))")
            }
            func value(_ name: String, _ labels: [String: String] = [:]) -> Double { Self.sample(text, name, labels) ?? 0 }

            // Subscription upkeep: the refused create, then the created subscription's expiry.
            #expect(try await bridge.waitUntilReady(), "\(bridge.log)")
            let subscription = try #require(simulator.subscriptions.first { $0.resource.contains("alice") })
            try await scrape("the upkeep failure and the Graph calls") {
                Self.sample($0, "graph_bridge_subscription_upkeep_failures_total", ["subscription": "inbox"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_graph_requests_total", ["operation": "create_subscription", "status": "400"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_graph_requests_total", ["operation": "create_subscription", "status": "201"]) ?? 0 >= 1
            }
            try await scrape("the expiry gauge") {
                Self.sample($0, "graph_bridge_subscription_expiry_timestamp_seconds", ["subscription": "inbox"]) != nil
            }
            #expect(
                abs(
                    value("graph_bridge_subscription_expiry_timestamp_seconds", ["subscription": "inbox"])
                        - subscription.expirationDateTime.timeIntervalSince1970) < 2)

            // A new mail: Graph notifies, the bridge fetches it (enrichment) and routes it.
            try simulator.createMessage(MessageContent(subject: "metrics mail"), in: "alice@contoso.com")
            try await scrape("the fetch") { Self.sample($0, "graph_bridge_enrichment_total", ["outcome": "fetched"]) ?? 0 >= 1 }
            #expect(value("graph_bridge_notifications_total", ["subscription": "inbox", "outcome": "accepted"]) >= 1)

            // The delta baseline after the create: its gauge says when its query began.
            try await scrape("the delta baseline") {
                Self.sample($0, "graph_bridge_delta_last_query_timestamp_seconds", ["subscription": "inbox"]) != nil
            }
            let baseline = value("graph_bridge_delta_last_query_timestamp_seconds", ["subscription": "inbox"])
            #expect(baseline >= launched.timeIntervalSince1970 - 1 && baseline <= Date().timeIntervalSince1970 + 1, "\(text)")
            // Missed notifications: a lifecycle event, and the delta resync makes the event Graph did not send.
            // (`updated` too: Graph's createdDateTime has whole seconds, so a mail made in the second of
            // the baseline reads as an update.)
            simulator.dropsNotifications = true
            try simulator.createMessage(MessageContent(subject: "never notified"), in: "alice@contoso.com")
            simulator.dropsNotifications = false
            _ = try simulator.sendLifecycleEvent(.missed, subscriptionID: subscription.id)
            // The resync's query moves the gauge. Waited for, not assumed: the baseline itself may
            // already have counted a resync event (a mail made in its second reads as an update),
            // so the counter can reach 1 before the lifecycle event's resync has queried.
            try await scrape("the lifecycle event and the resync") {
                Self.sample($0, "graph_bridge_lifecycle_events_total", ["event": "missed"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_resync_events_total", ["subscription": "inbox"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_delta_last_query_timestamp_seconds", ["subscription": "inbox"]) ?? 0 > baseline
            }
            #expect(value("graph_bridge_delta_last_query_timestamp_seconds", ["subscription": "inbox"]) > baseline, "the resync's query is the last one")

            // The receive-only feed: accepted and forged items, delivered to four sinks: one works,
            // one fails for good (a dead letter), one waits an hour to retry (queued), one is an exec
            // plugin that exits (restarted).
            let publicPort = try await bridge.port()
            #expect(try await EndToEndTests.post(client, port: publicPort, body: EndToEndTests.notification("X", 1)) == 202)
            let forged = String(decoding: EndToEndTests.notification("X", 2), as: UTF8.self).replacingOccurrences(
                of: "secretClientValue", with: "forged")
            #expect(try await EndToEndTests.post(client, port: publicPort, body: Array(forged.utf8)) == 202)
            try await scrape("notifications, acknowledgements and deliveries") {
                Self.sample($0, "graph_bridge_notifications_total", ["subscription": "audit-feed", "outcome": "accepted"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_notifications_total", ["subscription": "audit-feed", "outcome": "wrong_client_state"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_ack_seconds_count", ["endpoint": "notifications"]) ?? 0 >= 2
                    && Self.sample($0, "graph_bridge_deliveries_total", ["sink": "audit", "outcome": "success"]) ?? 0 >= 3
                    && Self.sample($0, "graph_bridge_deliveries_total", ["sink": "broken", "outcome": "retry"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_deliveries_total", ["sink": "broken", "outcome": "dead_letter"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_deliveries_total", ["sink": "stuck", "outcome": "retry"]) ?? 0 >= 1
            }
            #expect(value("graph_bridge_ack_seconds_sum", ["endpoint": "notifications"]) > 0)
            #expect(value("graph_bridge_ack_seconds_bucket", ["endpoint": "notifications", "le": "+Inf"]) >= 2)
            // The gauges the housekeeping sets every 5 s, and the plugin's restarts.
            try await scrape("queue depth, dead letters and plugin restarts") {
                Self.sample($0, "graph_bridge_queue_depth", ["sink": "stuck"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_dead_letters", ["sink": "broken"]) ?? 0 >= 1
                    && Self.sample($0, "graph_bridge_plugin_restarts_total", ["sink": "plugin"]) ?? 0 >= 1
            }
            #expect(value("graph_bridge_queue_depth", ["sink": "audit"]) == 0 && value("graph_bridge_dead_letters", ["sink": "audit"]) == 0)

            // Graph removes the subscription and refuses to make it again for a while: its expiry
            // gauge goes (no stale expiry while it does not exist), and comes back with the new one.
            let failuresBefore = value("graph_bridge_subscription_upkeep_failures_total", ["subscription": "inbox"])
            simulator.injectFault(.error(status: 400, code: "InvalidRequest", message: "refused by the test"), on: .createSubscription, count: 1000)
            _ = try simulator.sendLifecycleEvent(.subscriptionRemoved, subscriptionID: subscription.id)
            try await scrape("the expiry gauge removed with its subscription") {
                Self.sample($0, "graph_bridge_subscription_expiry_timestamp_seconds", ["subscription": "inbox"]) == nil
                    && Self.sample($0, "graph_bridge_subscription_upkeep_failures_total", ["subscription": "inbox"]) ?? 0 > failuresBefore
            }
            #expect(value("graph_bridge_lifecycle_events_total", ["event": "subscriptionRemoved"]) >= 1)
            simulator.clearFaults()
            try await scrape("the expiry gauge back with the new subscription") {
                Self.sample($0, "graph_bridge_subscription_expiry_timestamp_seconds", ["subscription": "inbox"]) != nil
            }
            let recreated = try #require(simulator.subscriptions.first { $0.resource.contains("alice") })
            #expect(recreated.id != subscription.id)
            #expect(
                abs(
                    value("graph_bridge_subscription_expiry_timestamp_seconds", ["subscription": "inbox"])
                        - recreated.expirationDateTime.timeIntervalSince1970) < 2)

            await client.shutdown()
            let stopped = await bridge.terminate(within: .seconds(10))
            #expect(stopped.inTime && stopped.code == 0, "\(bridge.log)")
        }
    }

    /// The value of `name{labels...}` in a Prometheus text exposition (``PrometheusText``: the
    /// series whose labels include all of `labels`, in any order); nil when there is none.
    static func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        PrometheusText.value(in: text, name, labels: labels)
    }

    /// The Graph simulator on loopback for one test; stopped gracefully at the end.
}
