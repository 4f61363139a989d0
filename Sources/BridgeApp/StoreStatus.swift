import BridgeCore
import BridgeServer
import BridgeStore

/// The status page's data from the state store: subscriptions (never their clientState),
/// events waiting to be routed, per-sink queues and dead letters, the latest events.
struct StoreStatus: StatusProvider {
    let store: BridgeStateStore
    /// The running generation: its sinks (a reload replaces them).
    let current: CurrentGeneration

    func status() async -> JSONValue {
        var object = JSONObject()
        let records = (try? await store.subscriptionRecords()) ?? []
        object["subscriptions"] = .array(records.map { record in
            var entry: JSONObject = ["name": .string(record.name), "managed": .bool(record.managed)]
            if let id = record.graphID { entry["id"] = .string(id) }
            if !record.resource.isEmpty { entry["resource"] = .string(record.resource) }
            if let expiration = record.expiration { entry["expires"] = .string(Timestamp.format(expiration)) }
            if let last = record.lastNotificationAt { entry["lastNotification"] = .string(Timestamp.format(last)) }
            return .object(entry)
        })
        // During a burst routing yields to the listener: acknowledged events wait here first.
        object["unrouted"] = .number(String((try? await store.unroutedCount()) ?? 0))
        let depths = (try? await store.queueDepths()) ?? [:]
        object["sinks"] = .array(current.sinkNames.map { name in
            let depth = depths[name] ?? QueueDepth(pending: 0, dead: 0)
            return .object(["name": .string(name), "queued": .number(String(depth.pending)), "deadLetters": .number(String(depth.dead))])
        })
        let events = (try? await store.recentEvents(limit: 25)) ?? []
        // Only the routing fields: `data` may hold mail content that has no place on a status page.
        object["recentEvents"] = .array(events.map { event in
            var summary = event
            summary.data = nil
            summary.resourceData = nil
            return summary.json
        })
        return .object(object)
    }
}
