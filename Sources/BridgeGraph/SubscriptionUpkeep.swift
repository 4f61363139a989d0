import BridgeCore
import Foundation
import GraphClient

/// One managed subscription's upkeep as a value, without I/O: what is due at a given time
/// (``next(now:)``), and how each outcome and lifecycle request changes it. The
/// ``SubscriptionManager``'s keeper performs the actions (Graph calls, store writes, logs) and
/// reports back; tests drive every transition directly. ``start(stored:declaration:notificationURL:)``
/// and ``check(_:against:)`` are the decisions of a start.
struct SubscriptionUpkeep: Sendable {
    /// What the subscription needs next.
    enum Action: Sendable, Equatable {
        /// `POST /subscriptions`; `recreating` when one existed before (Graph lost or removed it).
        case create(recreating: Bool)
        /// `PATCH` the declared `encryptionCertificate` onto it (key rotation).
        case updateCertificate
        /// `POST /subscriptions/{id}/reauthorize` (a renewal when that is refused).
        case reauthorize
        /// `resync: delta`: take a baseline, follow the delta after a gap, or the periodic refresh.
        case resync
        /// `PATCH expirationDateTime`.
        case renew
        /// Nothing before this date (unless a lifecycle request comes).
        case wait(until: Date)
    }

    /// A lifecycle notification Graph sent for the subscription, by the id it named.
    enum LifecycleRequest: Sendable, Equatable {
        case reauthorizationRequired(graphID: String)
        case subscriptionRemoved(graphID: String)
        /// `missed`: follow the delta.
        case missed(graphID: String)
    }

    /// What a lifecycle request changed.
    enum LifecycleEffect: Sendable, Equatable {
        /// For another (older) subscription, or one without `resync: delta` (for `missed`): nothing changes.
        case ignored
        /// A reauthorize is due now.
        case reauthorize
        /// The subscription is gone: the listener must stop accepting `graphID`; a create is due now.
        case recreate(graphID: String)
        /// A resync is due now.
        case resync
    }

    /// How a start treats a subscription record the store has.
    enum StartDecision: Sendable, Equatable {
        /// No longer declared: delete it at Graph and forget it.
        case retire
        /// Resource, change types or notification URL changed: delete it and create a new one.
        case replace
        /// The same definition: check with Graph (GET) whether it still exists.
        case check
        /// The same definition, but Graph's id never came back (the create's answer was lost): create (Graph's 409 leads to adopting it).
        case awaitCreate
    }

    /// What Graph's copy of a stored subscription (its GET) means.
    enum GraphCheck: Sendable, Equatable {
        case reuse
        /// `includeResourceData` changed: Graph takes that only with a new subscription.
        case replace
        /// It still encrypts for another certificate: PATCH the declared one.
        case updateCertificate
    }

    let declaration: SubscriptionManager.Declaration
    /// What the store knows; nil before the first create.
    var record: SubscriptionRecord?
    /// Upkeep failures in a row.
    var failures = 0
    /// No action before this date (backoff after a failure).
    var retryAt = Date.distantPast
    var reauthorizeDue = false
    var certificateDue = false
    /// `resync: delta` only: a new deltaLink is to be taken without events (at create, or after a 410).
    var baselineDue = false
    /// `resync: delta` only: the delta is to be followed, one event per changed item; why.
    var resyncReason: String?
    /// When the stored deltaLink's query began (nil: none yet, or not known).
    var deltaTakenAt: Date?
    /// How often a `resync: delta` subscription follows the delta while all is well.
    let deltaRefresh: Duration

    init(declaration: SubscriptionManager.Declaration, record: SubscriptionRecord? = nil, deltaRefresh: Duration = .seconds(3600)) {
        self.declaration = declaration
        self.record = record
        self.deltaRefresh = deltaRefresh
    }

    /// The Graph id the subscription has now; nil while it is to be created.
    var graphID: String? { record?.graphID }

    // MARK: What is due

    /// The action due at `now`, or how long to wait.
    func next(now: Date) -> Action {
        let due = nextDate(now: now)
        guard due <= now else { return .wait(until: due) }
        guard let record, record.graphID != nil else { return .create(recreating: self.record != nil) }
        if certificateDue { return .updateCertificate }
        if reauthorizeDue { return .reauthorize }
        // A resync or baseline due, or the periodic refresh that keeps the deltaLink recent (a renewal that is due goes first).
        if declaration.resync, baselineDue || resyncReason != nil || (refreshDate ?? .distantFuture) <= now,
            (renewalDate(now: now) ?? .distantPast) > now
        {
            return .resync
        }
        return .renew
    }

    /// When the next action is due.
    func nextDate(now: Date) -> Date {
        guard let record, record.graphID != nil else { return retryAt }
        if reauthorizeDue || certificateDue || baselineDue || resyncReason != nil { return retryAt }
        guard var next = renewalDate(now: now) else { return retryAt }
        if let refresh = refreshDate { next = min(next, refresh) }
        return max(retryAt, next)
    }

    /// When a `resync: delta` subscription's deltaLink is next brought up to date while all is well.
    var refreshDate: Date? {
        guard declaration.resync, let deltaTakenAt else { return nil }
        return deltaTakenAt.addingTimeInterval(deltaRefresh.seconds)
    }

    /// When the subscription is to be renewed (``RenewalSchedule``); nil when it has no expiry.
    func renewalDate(now: Date) -> Date? {
        guard let record, let expiration = record.expiration else { return nil }
        return Date(
            timeIntervalSince1970: RenewalSchedule.renewalDate(
                renewedAt: (record.renewedAt ?? now).timeIntervalSince1970, expiration: expiration.timeIntervalSince1970))
    }

    // MARK: Lifecycle requests

    /// Applies a lifecycle request; one naming another subscription id than this one's is ignored.
    mutating func apply(_ request: LifecycleRequest) -> LifecycleEffect {
        switch request {
        case .reauthorizationRequired(let id):
            guard graphID == id else { return .ignored }
            reauthorizeDue = true
            retryAt = .distantPast
            return .reauthorize
        case .subscriptionRemoved(let id):
            guard graphID == id else { return .ignored }
            record?.graphID = nil
            retryAt = .distantPast
            return .recreate(graphID: id)
        case .missed(let id):
            guard declaration.resync, graphID == id else { return .ignored }
            resyncReason = resyncReason ?? "missed"
            retryAt = .distantPast
            return .resync
        }
    }

    // MARK: Outcomes

    /// Graph created (or adopted) the subscription as `record`. With `resync: delta`, a first
    /// create takes a baseline; a recreate catches up on what fell between the two subscriptions
    /// when the stored deltaLink (`deltaLinkKept`) is for this resource.
    mutating func created(_ record: SubscriptionRecord, recreating: Bool, deltaLinkKept: Bool) {
        self.record = record
        if declaration.resync {
            if recreating, deltaLinkKept {
                resyncReason = resyncReason ?? "recreated"
            } else {
                baselineDue = true
            }
        }
        succeeded()
    }

    /// A renewal worked; Graph's answer still names `graphCertificateID`.
    mutating func renewed(_ record: SubscriptionRecord, graphCertificateID: String?) {
        self.record = record
        // Graph still encrypting for another certificate (a start that could not check): move it next.
        if declaration.includeResourceData, let declared = declaration.encryption?.id, let graphCertificateID, graphCertificateID != declared {
            certificateDue = true
        }
        succeeded()
    }

    /// The certificate PATCH worked (a renewal too).
    mutating func certificateUpdated(_ record: SubscriptionRecord) {
        self.record = record
        certificateDue = false
        succeeded()
    }

    /// Reauthorized (or renewed instead): with `resync: delta`, delivery may have paused, so the delta is followed.
    mutating func reauthorized() {
        reauthorizeDue = false
        if declaration.resync { resyncReason = resyncReason ?? "reauthorizationRequired" }
        succeeded()
    }

    /// A baseline or resync finished with a deltaLink whose query began at `takenAt`.
    mutating func resynced(takenAt: Date) {
        baselineDue = false
        resyncReason = nil
        deltaTakenAt = takenAt
        succeeded()
    }

    /// Graph answered 404 to a call on the subscription: it is gone and is created again now.
    /// Returns the id the listener must stop accepting.
    mutating func lost() -> String? {
        let id = graphID
        record?.graphID = nil
        reauthorizeDue = false
        certificateDue = false
        retryAt = .distantPast
        return id
    }

    /// An upkeep call failed at `now`: retried after a doubling backoff (2 s, 4 s, ... at most
    /// `maxRetryDelay`) or Graph's `Retry-After` when longer. Returns the wait in seconds.
    @discardableResult
    mutating func failed(now: Date, retryAfter: Duration?, maxRetryDelay: Duration) -> TimeInterval {
        failures += 1
        let backoff = min(maxRetryDelay.seconds, pow(2, Double(min(failures, 12))))
        let wait = max(backoff, retryAfter?.seconds ?? 0)
        retryAt = now.addingTimeInterval(wait)
        return wait
    }

    private mutating func succeeded() {
        failures = 0
        retryAt = .distantPast
    }

    // MARK: Start

    /// What a start found for a reused `resync: delta` subscription.
    enum StartResync: Sendable, Equatable {
        /// A deltaLink for this resource, recent enough: nothing owed.
        case none
        /// No deltaLink for this resource: a baseline is taken (no events).
        case baseline
        /// A resync was under way when the bridge stopped: followed again for `reason`.
        case resume(reason: String)
        /// The bridge was down longer than Graph retries (no notification, renewal or delta query since `lastSeen`): the delta is followed.
        case outage(lastSeen: Date)
    }

    /// At start, for a reused `resync: delta` subscription (Graph's id known): what the stored
    /// deltaLink means. Another resource's deltaLink counts as none.
    mutating func planStartResync(stored: StoredDeltaLink?, now: Date, outageLimit: TimeInterval) -> StartResync {
        guard declaration.resync, let record, record.graphID != nil else { return .none }
        guard let stored, stored.resource == declaration.resource else {
            baselineDue = true
            return .baseline
        }
        deltaTakenAt = stored.takenAt
        if let pending = stored.pending {
            resyncReason = pending
            return .resume(reason: pending)
        }
        let lastAlive = [record.lastNotificationAt, record.renewedAt, stored.takenAt].compactMap { $0 }.max() ?? stored.takenAt
        if resyncReason == nil, now.timeIntervalSince(lastAlive) > outageLimit {
            resyncReason = "outage"
            return .outage(lastSeen: lastAlive)
        }
        return .none
    }

    /// How a start treats `stored` (a managed record): ``StartDecision``.
    static func start(stored: SubscriptionRecord, declaration: SubscriptionManager.Declaration?, notificationURL: String) -> StartDecision {
        guard let declaration else { return .retire }
        let sameDefinition =
            stored.resource == declaration.resource
            && stored.changeTypes == declaration.changeTypes.joined(separator: ",")
            && stored.notificationURL == notificationURL
        guard sameDefinition else { return .replace }
        return stored.graphID == nil ? .awaitCreate : .check
    }

    /// What Graph's copy of a stored subscription means for `declaration`. Fields Graph left out count as matching.
    static func check(_ existing: GraphSubscription, against declaration: SubscriptionManager.Declaration) -> GraphCheck {
        if let included = existing.includeResourceData, included != declaration.includeResourceData { return .replace }
        if declaration.includeResourceData, let declared = declaration.encryption?.id, let id = existing.encryptionCertificateId, id != declared {
            return .updateCertificate
        }
        return .reuse
    }
}
