import BridgeServer
import Foundation
import Testing

/// `/metrics` gives every family a `# HELP` line (swift-prometheus emits none for metrics made
/// through swift-metrics). The scrape of the real binary after traffic is in EndToEndTests.
@Suite("metric help")
struct MetricHelpTests {
    @Test("a HELP line is added before every TYPE line that has none, and kept where there is one")
    func completes() {
        let emitted = """
            # TYPE graph_bridge_dead_letters gauge
            graph_bridge_dead_letters{sink="audit"} 0
            # HELP graph_bridge_queue_depth already there
            # TYPE graph_bridge_queue_depth gauge
            graph_bridge_queue_depth{sink="audit"} 0
            # TYPE some_other_total counter
            some_other_total 1

            """
        let completed = String(decoding: MetricHelp.completing(Array(emitted.utf8)), as: UTF8.self)
        #expect(
            completed == """
                # HELP graph_bridge_dead_letters \(MetricHelp.texts["graph_bridge_dead_letters"]!)
                # TYPE graph_bridge_dead_letters gauge
                graph_bridge_dead_letters{sink="audit"} 0
                # HELP graph_bridge_queue_depth already there
                # TYPE graph_bridge_queue_depth gauge
                graph_bridge_queue_depth{sink="audit"} 0
                # HELP some_other_total graph-bridge metric some_other_total (see docs/operations.md).
                # TYPE some_other_total counter
                some_other_total 1

                """)
        #expect(MetricHelp.completing([]).isEmpty)
    }

    @Test("every metric the sources make has its own help text")
    func everyMetricHasText() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        var names: Set<String> = []
        for file in files {
            let text = try String(contentsOfFile: sources.appendingPathComponent(file).path, encoding: .utf8)
            for match in text.matches(of: /label: "(graph_bridge_[a-z_]+)"/) { names.insert(String(match.1)) }
        }
        #expect(names.count >= 10, "found the metrics in \(sources.path): \(names.sorted())")
        for name in names.sorted() {
            #expect(MetricHelp.texts[name] != nil, "\(name) has no help text in MetricHelp.texts")
        }
        // The metrics SPEC section 11 requires are described too.
        for name in [
            "graph_bridge_notifications_total", "graph_bridge_ack_seconds", "graph_bridge_deliveries_total", "graph_bridge_queue_depth",
            "graph_bridge_dead_letters", "graph_bridge_subscription_expiry_timestamp_seconds", "graph_bridge_lifecycle_events_total",
            "graph_bridge_graph_requests_total", "graph_bridge_subscription_upkeep_failures_total", "graph_bridge_enrichment_total",
            "graph_bridge_plugin_restarts_total", "graph_bridge_resync_events_total",
        ] {
            #expect(MetricHelp.texts[name] != nil, "\(name)")
        }
    }
}
