import Foundation

/// An access token the identity platform issued.
struct AccessGrant: Sendable {
    var expiresAt: Date
    /// The signed-in user for delegated tokens; nil for app-only tokens.
    var userID: String?
    var scopes: [String]
}

/// A refresh token (delegated only). Redeeming it replaces it.
struct RefreshGrant: Sendable {
    var userID: String
    var scopes: [String]
}

/// Everything the simulator knows, behind one lock. Expired subscriptions are dropped lazily by
/// ``purgeExpired(now:)``, which every reader calls first.
struct SimulatorState: Sendable {
    var accessTokens: [String: AccessGrant] = [:]
    var refreshTokens: [String: RefreshGrant] = [:]
    /// Keyed by `device_code`.
    var deviceCodes: [String: DeviceCodeGrant] = [:]
    /// Scripted `slow_down` answers left, keyed by `device_code`.
    var slowDowns: [String: Int] = [:]

    var subscriptions: [String: SimulatedSubscription] = [:]
    var messages: [String: SimulatedMessage] = [:]
    /// Message changes for delta queries (GraphSimulator+Delta.swift).
    var delta = DeltaLog()

    var faults: [SimulatedEndpoint: [Fault]] = [:]

    // Runtime-adjustable settings (start from the configuration).
    var maxSubscriptionLifetime: Duration?
    var subscriptionQuota: Int
    var duplicateNotifications: Bool

    mutating func purgeExpired(now: Date) {
        subscriptions = subscriptions.filter { $0.value.expirationDateTime > now }
    }

    /// Subscriptions in creation order.
    var orderedSubscriptions: [SimulatedSubscription] {
        subscriptions.values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Takes the next scripted fault for `endpoint` (or, for Graph calls, `anyGraph`).
    mutating func takeFault(for endpoint: SimulatedEndpoint, isGraph: Bool) -> Fault? {
        for key in isGraph ? [endpoint, .anyGraph] : [endpoint] {
            if var queue = faults[key], !queue.isEmpty {
                let fault = queue.removeFirst()
                faults[key] = queue.isEmpty ? nil : queue
                return fault
            }
        }
        return nil
    }
}
