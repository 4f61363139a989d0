/// What the intake decides about one notification item before anything is journaled: accepted
/// for a subscription, or dropped and why. The listener and `graph-bridge routes test` both ask
/// ``NotificationIntake/check(_:in:)``, so the dry run drops exactly what the bridge drops.
public enum IntakeCheck: Sendable, Hashable {
    /// The item names a known subscription and carries its clientState.
    case accepted(SubscriptionEntry)
    /// No subscription the bridge knows has this id (nor expects the item's clientState).
    case unknownSubscription
    /// The subscription is known; the item's clientState is not its secret (forged or stale).
    case wrongClientState(SubscriptionEntry)

    /// The subscription the item names, when it is known (accepted or not).
    public var subscription: SubscriptionEntry? {
        switch self {
        case .accepted(let entry), .wrongClientState(let entry): entry
        case .unknownSubscription: nil
        }
    }

    public var isAccepted: Bool {
        if case .accepted = self { return true }
        return false
    }
}

extension NotificationIntake {
    /// The intake's check of one item: its subscription by id (or an expected one by clientState),
    /// then its clientState against that subscription's secret, compared in constant time.
    public static func check(_ item: ChangeNotification, in directory: SubscriptionDirectory) -> IntakeCheck {
        guard let subscription = directory.entry(forSubscriptionID: item.subscriptionId, clientState: item.clientState) else {
            return .unknownSubscription
        }
        guard constantTimeEquals(Array((item.clientState ?? "").utf8), Array(subscription.clientState.utf8)) else {
            return .wrongClientState(subscription)
        }
        return .accepted(subscription)
    }
}
