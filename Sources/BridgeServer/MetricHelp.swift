import Foundation

/// `# HELP` lines for `/metrics`.
///
/// swift-prometheus 2.4.1 emits a `# HELP` line only for a metric family registered with help
/// text, and its swift-metrics factory always registers with none; registering a family up front
/// with help text does not work either, because the factory's later, help-less registration of
/// the same name is a fatal "help text mismatch". So the exposition is completed afterwards:
/// every `# TYPE` line without a `# HELP` line before it gets one, from `texts` (a metric not
/// listed there still gets a generic line, so a scraper never sees a family without help).
public enum MetricHelp {
    /// What each metric counts, by family name (SPEC section 11 and docs/operations.md).
    public static let texts: [String: String] = [
        "graph_bridge_notifications_total":
            "Notification items received, by subscription and outcome (accepted, duplicate, wrong_client_state, unknown_subscription, invalid).",
        "graph_bridge_requests_rejected_total":
            "Whole notification requests refused, by endpoint and reason (malformed, too_large, journal_failed, ...).",
        "graph_bridge_ack_seconds": "Time from a notification body received to its answer, by endpoint.",
        "graph_bridge_deliveries_total": "Delivery attempts, by sink and outcome (success, retry, dead_letter).",
        "graph_bridge_delivery_seconds": "Time a successful delivery took, by sink.",
        "graph_bridge_queue_depth": "Deliveries waiting, by sink (updated every 5 s).",
        "graph_bridge_dead_letters": "Dead letters kept in the state store, by sink.",
        "graph_bridge_subscription_expiry_timestamp_seconds": "When each managed subscription expires at Graph, as a Unix timestamp in seconds.",
        "graph_bridge_lifecycle_events_total": "Lifecycle notifications accepted, by event.",
        "graph_bridge_graph_requests_total": "Requests to Microsoft Graph, by operation and HTTP status.",
        "graph_bridge_subscription_upkeep_failures_total": "Failed creates, renewals or reauthorizations of a subscription, by subscription.",
        "graph_bridge_enrichment_total": "fetch: reads of changed items, by outcome.",
        "graph_bridge_plugin_restarts_total": "Restarts of an exec sink's plugin process, by sink.",
        "graph_bridge_outcome_write_failures_total":
            "Writes of delivery outcomes the state store refused, by sink (each is written again; meanwhile the sink claims nothing new).",
        "graph_bridge_resync_events_total": "Events made by a delta resync, by subscription.",
        "graph_bridge_routing_yield_seconds_total": "Time routing held back for a saturated listener, in seconds.",
        "graph_bridge_state_wal_bytes_total": "Bytes the SQLite state store's commits appended to its write-ahead log (frames of one page each).",
        "graph_bridge_state_commits_total": "Transactions the SQLite state store committed, each one fsync of its write-ahead log.",
        "graph_bridge_events_routed_total": "Events routed (yes), matched by no route (no_route), or dropped before routing (dropped).",
        "graph_bridge_rich_notifications_decrypted_total": "Rich notifications whose tokens passed and whose content became data, by subscription and encryption id (the key that decrypted it).",
        "graph_bridge_rich_notifications_undecrypted_total": "Rich notifications routed without data because they could not be checked, by reason.",
        "graph_bridge_rich_notifications_rejected_total": "Rich notifications dropped after the 202 because a check failed, by reason.",
        "graph_bridge_config_reloads_total":
            "Configuration reloads asked for with SIGHUP, by outcome (applied; invalid: the file was refused; failed: it could not start), the running configuration kept unless applied.",
        "graph_bridge_config_last_reload_successful":
            "1 when the last configuration load (at start, or the last SIGHUP) was applied, 0 when it was refused or could not start.",
        "graph_bridge_config_last_reload_success_timestamp_seconds":
            "When the running configuration was applied (at start, or by the last successful SIGHUP), as a Unix timestamp in seconds.",
        "graph_bridge_delta_last_query_timestamp_seconds":
            "When the deltaLink of each resync: delta subscription was taken (the start of its last successful delta query), as a Unix timestamp in seconds.",
        "graph_bridge_leader": "On PostgreSQL: 1 on the replica that manages the subscriptions (it holds the leader lock), 0 on the others.",
        "graph_bridge_request_timeouts_total": "Connections closed because a request did not fully arrive within server.requestTimeout, by listener.",
    ]

    /// `exposition` with a `# HELP` line before every `# TYPE` line that has none.
    public static func completing(_ exposition: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(exposition.count + 4096)
        var previousHelpName: Substring?
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let text = Substring(decoding: line, as: UTF8.self)
            if text.hasPrefix("# TYPE ") {
                let name = text.dropFirst("# TYPE ".count).prefix { $0 != " " }
                if previousHelpName != name {
                    let help = texts[String(name)] ?? "graph-bridge metric \(name) (see docs/operations.md)."
                    output.append(contentsOf: "# HELP \(name) \(escaped(help))\n".utf8)
                }
            }
            previousHelpName = text.hasPrefix("# HELP ") ? text.dropFirst("# HELP ".count).prefix { $0 != " " } : nil
            output.append(contentsOf: line)
            output.append(UInt8(ascii: "\n"))
        }
        output.removeLast()  // the split gave back one newline too many
        return output
    }

    /// Help text as the text format wants it: backslash and newline escaped.
    static func escaped(_ help: String) -> String {
        help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
