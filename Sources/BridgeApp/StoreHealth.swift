import BridgeCore
import BridgeGraph
import BridgeServer
import Foundation

/// The health and readiness endpoints' view of the running bridge.
/// - `/healthz` (admin): the store answers, the last journal write worked, the subscription manager has started.
/// - `/healthz` (public): notifications can be taken (the store answers and the last journal write worked).
/// - `/readyz` (admin): the store takes a write, the last sign-in to Graph worked, and every
///   managed subscription has a Graph id confirmed by the subscription manager and has not expired.
///
/// Dates come from `now` (the system's wall clock in the bridge): the write probe's stamp and
/// the moment a subscription counts as expired.
struct StoreHealth: HealthCheck {
    let store: BridgeStateStore
    let intake: NotificationIntake
    /// The running generation: its subscription manager and managed subscriptions (a reload replaces them).
    let current: CurrentGeneration
    /// The last sign-in to Graph: failing makes the bridge not ready (renewals will fail too).
    var signIn: SignInStatus? = nil
    /// The wall clock: what the write probe stamps, and what a subscription's expiry is compared with.
    var now: @Sendable () -> Date = Date.init

    func problems() async -> [String: String] {
        var problems = await intakeProblems()
        if let upkeep = current.upkeep, !upkeep.isReady {
            problems["subscriptions"] = "the subscription manager is still starting"
        }
        return problems
    }

    func acceptsNotifications() async -> Bool {
        await intakeProblems().isEmpty
    }

    func readinessProblems() async -> [String: String] {
        var problems: [String: String] = [:]
        do {
            try await store.setSetting("readyz.lastWriteProbe", to: Timestamp.format(now()))
        } catch {
            problems["store"] = "not writable: \(error)"
        }
        if let failure = intake.lastJournalFailure {
            problems["journal"] = failure
        }
        if let failure = signIn?.lastFailure {
            problems["signin"] = "signing in to Graph fails: \(failure)"
        }
        let managedNames = current.managedNames
        if let upkeep = current.upkeep, !upkeep.isReady {
            problems["subscriptions"] = "the subscription manager is still reconciling with Graph"
        } else if !managedNames.isEmpty {
            let records: [SubscriptionRecord]
            do {
                records = try await store.subscriptionRecords()
            } catch {
                problems["store"] = "unreadable: \(error)"
                return problems
            }
            let failing = Self.subscriptionProblems(managedNames: managedNames, records: records, at: now())
            if !failing.isEmpty {
                let shown = failing.prefix(10).joined(separator: "; ")
                problems["subscriptions"] = failing.count > 10 ? shown + "; and \(failing.count - 10) more" : shown
            }
        }
        return problems
    }

    /// The managed subscriptions that are not looked after at `now`: no Graph id yet, or expired
    /// (an expiration at or before `now`).
    static func subscriptionProblems(managedNames: [String], records: [SubscriptionRecord], at now: Date) -> [String] {
        let byName = Dictionary(records.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return managedNames.compactMap { name -> String? in
            guard let record = byName[name], record.graphID != nil else { return "\(name): no subscription at Graph yet" }
            if let expiration = record.expiration, expiration <= now { return "\(name): expired at \(Timestamp.format(expiration))" }
            return nil
        }
    }

    /// What stops a notification from being journaled.
    private func intakeProblems() async -> [String: String] {
        var problems: [String: String] = [:]
        do {
            try await store.ping()
        } catch {
            problems["store"] = "\(error)"
        }
        if let failure = intake.lastJournalFailure {
            problems["journal"] = failure
        }
        return problems
    }
}
