import Testing

/// The `/metrics` reader the end-to-end tests wait on (``PrometheusText``), on exposition text.
@Suite("metrics text")
struct MetricScrapeTests {
    static let exposition = #"""
        # HELP graph_bridge_deliveries_total Delivery attempts, by sink and outcome (success, retry, dead_letter).
        # TYPE graph_bridge_deliveries_total counter
        graph_bridge_deliveries_total{sink="audit",outcome="retry"} 3
        graph_bridge_deliveries_total{outcome="success",sink="audit"} 7
        graph_bridge_deliveries_total{sink="hook",outcome="retry"} 2 1765000000000
        graph_bridge_deliveries_total_extra{sink="audit",outcome="retry"} 100
        graph_bridge_odd{path="a \"quoted\", {braced} = one\\two\nline", le="+Inf"} +Inf
        graph_bridge_leader 1
        graph_bridge_delta_last_query_timestamp_seconds{subscription="inbox"} 1.7651234567891e+09

        """#

    @Test("a series is found whatever the order of its labels; given fewer labels, the matching series are summed")
    func labels() {
        let text = Self.exposition
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries_total", labels: ["sink": "audit", "outcome": "retry"]) == 3)
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries_total", labels: ["sink": "audit", "outcome": "success"]) == 7)
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries_total", labels: ["outcome": "retry"]) == 5, "audit's and hook's")
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries_total") == 12)
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries_total", labels: ["sink": "stuck"]) == nil)
        #expect(PrometheusText.value(in: text, "graph_bridge_deliveries", labels: ["sink": "audit"]) == nil, "a name is whole, not a prefix")
        #expect(PrometheusText.value(in: text, "graph_bridge_leader") == 1)
        #expect(
            PrometheusText.value(in: text, "graph_bridge_delta_last_query_timestamp_seconds", labels: ["subscription": "inbox"]) == 1_765_123_456.7891
        )
    }

    @Test("label values are unescaped and may hold commas, braces and equals signs; +Inf is a value")
    func escapes() throws {
        let odd = try #require(PrometheusText.samples(Self.exposition).first { $0.name == "graph_bridge_odd" })
        #expect(odd.labels == ["path": "a \"quoted\", {braced} = one\\two\nline", "le": "+Inf"])
        #expect(odd.value == .infinity)
        #expect(PrometheusText.samples(Self.exposition).count == 7, "comments and blank lines are no samples")
        #expect(PrometheusText.samples(#"broken{sink="audit} 1"#).isEmpty, "an unterminated label value is no sample")
    }
}
