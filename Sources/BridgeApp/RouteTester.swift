public import BridgeCore
public import BridgeSettings
import BridgeStore
public import Foundation
import Logging

/// `graph-bridge routes test`: what the bridge would do with a notification body, without sending.
///
/// Each item goes through the intake's own check (``NotificationIntake/check(_:in:)``) against the
/// subscriptions the bridge would know: the receive-only ones of the configuration and the managed
/// ones whose Graph id and clientState the state file holds. A managed subscription the bridge has
/// not created yet has no id: an item is taken for it when its resource lies under the
/// subscription's (case-insensitive) and under no other's; its clientState cannot be checked.
public enum RouteTester {
    /// What happened to one item.
    public struct Outcome: Sendable, Hashable {
        /// The item's position in `value`, from 0.
        public var index: Int
        /// The sinks it reaches, in route order; empty when it is dropped or no route matches.
        public var sinks: [String]
        /// Why it is dropped (`wrong clientState`, `unknown subscription`, ...); nil when it is routed.
        public var dropped: String?
        /// The line `routes test` prints for it.
        public var line: String
    }

    /// Reads the managed subscriptions from the state store when there is one (never creating a state file), then ``describe(body:configuration:stored:now:)``.
    public static func run(body: [UInt8], configuration: BridgeConfiguration, now: Date = Date()) async throws -> [Outcome] {
        var stored: [SubscriptionRecord] = []
        if configuration.subscriptions.contains(where: \.manage),
            let opened = try await OpenedStore.open(configuration.state, onlyIfPresent: true, logger: Logger(label: "graph-bridge.routes-test"))
        {
            do {
                stored = try await opened.store.subscriptionRecords()
            } catch {
                await opened.shutdown()
                throw error
            }
            await opened.shutdown()
        }
        return try describe(body: body, configuration: configuration, stored: stored, now: now)
    }

    /// The outcome of every item of `body`, given the subscription records of the state file.
    public static func describe(body: [UInt8], configuration: BridgeConfiguration, stored: [SubscriptionRecord], now: Date = Date()) throws
        -> [Outcome]
    {
        let collection = try ChangeNotificationCollection(body: body)
        let managed = configuration.subscriptions.filter(\.manage)
        let managedNames = Set(managed.map(\.name))
        let created = stored.compactMap { record -> SubscriptionEntry? in
            guard record.managed, managedNames.contains(record.name), let id = record.graphID else { return nil }
            return SubscriptionEntry(name: record.name, id: id, resource: record.resource, clientState: record.clientState)
        }
        let directory = SubscriptionDirectory(configuration.receiveOnlyEntries + created)
        let createdNames = Set(created.map(\.name))
        let notYetCreated = managed.filter { !createdNames.contains($0.name) }

        var outcomes: [Outcome] = []
        for (index, item) in collection.items.enumerated() {
            guard let item else {
                outcomes.append(
                    Outcome(
                        index: index, sinks: [], dropped: "not a notification",
                        line: "item \(index): dropped: not a notification (no subscriptionId, or neither changeType nor lifecycleEvent)"))
                continue
            }
            var subscription: SubscriptionEntry
            var note = ""
            switch NotificationIntake.check(item, in: directory) {
            case .accepted(let entry):
                subscription = entry
            case .wrongClientState(let entry):
                outcomes.append(
                    Outcome(
                        index: index, sinks: [], dropped: "wrong clientState",
                        line: "item \(index): dropped: wrong clientState (subscription=\(entry.name))"))
                continue
            case .unknownSubscription:
                let candidates = notYetCreated.filter { declaration in
                    guard let resource = declaration.resource, let itemResource = item.resource else { return false }
                    return under(itemResource, resource)
                }
                guard candidates.count == 1, let declaration = candidates.first else {
                    var why = "no subscription has id \(item.subscriptionId)"
                    if candidates.count > 1 {
                        why += "; its resource fits \(candidates.map(\.name).joined(separator: ", ")), which have no id yet"
                    }
                    outcomes.append(
                        Outcome(
                            index: index, sinks: [], dropped: "unknown subscription",
                            line: "item \(index): dropped: unknown subscription (\(why))"))
                    continue
                }
                subscription = SubscriptionEntry(name: declaration.name, id: item.subscriptionId, resource: declaration.resource, clientState: "")
                note = " (by resource: not created yet, clientState not checked)"
            }
            let event = NotificationIntake.entry(for: item, subscription: subscription, validationTokens: nil, now: now).event
            let decision = configuration.router.route(event)
            let what = item.changeType ?? "lifecycle:\(item.lifecycleEvent ?? "?")"
            let routes = decision.matchedRoutes.map { "#\($0 + 1)" }.joined(separator: ",")
            let sinks = decision.sinks.isEmpty ? "(no sink: no route matched)" : decision.sinks.joined(separator: ", ")
            outcomes.append(
                Outcome(
                    index: index, sinks: decision.sinks, dropped: nil,
                    line: "item \(index): subscription=\(subscription.name)\(note) \(what) -> \(sinks)\(routes.isEmpty ? "" : " [routes \(routes)]")")
            )
        }
        return outcomes
    }

    /// Whether `resource` is `base` or below it, ignoring case (Graph may change the case of a path).
    static func under(_ resource: String, _ base: String) -> Bool {
        let resource = resource.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let base = base.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return !base.isEmpty && (resource == base || resource.hasPrefix(base + "/"))
    }

    /// The items whose sinks are not `expected` (compared as sets; empty: dropped or no sink), as messages naming them.
    public static func mismatches(_ outcomes: [Outcome], expected: [String]) -> [String] {
        let want = Set(expected)
        return outcomes.compactMap { outcome in
            guard Set(outcome.sinks) != want else { return nil }
            let got = outcome.dropped.map { "dropped: \($0)" } ?? (outcome.sinks.isEmpty ? "no sink" : outcome.sinks.joined(separator: ","))
            let wanted = expected.isEmpty ? "dropped or no sink" : expected.joined(separator: ",")
            return "item \(outcome.index): expected \(wanted), got \(got)"
        }
    }
}
