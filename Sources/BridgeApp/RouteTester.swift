public import BridgeCore
public import Foundation

/// `graph-bridge routes test`: what the routes would do with a notification body, without sending.
public enum RouteTester {
    public static func describe(body: [UInt8], configuration: BridgeConfiguration, now: Date = Date()) throws -> [String] {
        let collection = try ChangeNotificationCollection(body: body)
        let receiveOnly = SubscriptionDirectory(configuration.receiveOnlyEntries)
        var lines: [String] = []
        for (index, item) in collection.items.enumerated() {
            guard let item else {
                lines.append("item \(index): not a notification (no subscriptionId, or neither changeType nor lifecycleEvent)")
                continue
            }
            // Subscriptions the bridge manages get their Graph id at run time; match them by resource when possible.
            let entry = receiveOnly.entry(forSubscriptionID: item.subscriptionId)
                ?? SubscriptionEntry(name: managedName(for: item, in: configuration) ?? "(unknown)", id: item.subscriptionId, resource: nil, clientState: "")
            let event = NotificationIntake.entry(for: item, subscription: entry, validationTokens: nil, now: now).event
            let decision = configuration.router.route(event)
            let what = item.changeType ?? "lifecycle:\(item.lifecycleEvent ?? "?")"
            let routes = decision.matchedRoutes.map { "#\($0 + 1)" }.joined(separator: ",")
            let sinks = decision.sinks.isEmpty ? "(no sink: no route matched)" : decision.sinks.joined(separator: ", ")
            lines.append("item \(index): subscription=\(entry.name) \(what) -> \(sinks)\(routes.isEmpty ? "" : " [routes \(routes)]")")
        }
        return lines
    }

    static func managedName(for item: ChangeNotification, in configuration: BridgeConfiguration) -> String? {
        let managed = configuration.subscriptions.filter(\.manage)
        return managed.count == 1 ? managed[0].name : nil
    }
}

