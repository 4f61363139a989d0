import BridgeCore
import Foundation
import GraphClient
import Testing

@testable import BridgeGraph

/// ``SubscriptionUpkeep``, the subscription manager's decisions as a value: every transition,
/// no I/O, no waiting.
@Suite("subscription upkeep state machine")
struct SubscriptionUpkeepTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let url = "https://bridge.example.test/notifications"
    static let mail = BridgeUnderTest.inbox
    static var mailWithResync: SubscriptionManager.Declaration {
        var declaration = mail
        declaration.resync = true
        return declaration
    }

    static func rich(_ id: String) -> SubscriptionManager.Declaration {
        SubscriptionManager.Declaration(
            name: "inbox", resource: mail.resource, changeTypes: ["created"], expiration: nil, includeResourceData: true,
            encryption: .init(certificate: "CERT-\(id)", id: id))
    }

    /// A record Graph answered with `id`, created at `at` for `lifetime`.
    static func record(id: String? = "sub-1", at: Date = t0, lifetime: TimeInterval = 4230 * 60, resource: String = mail.resource)
        -> SubscriptionRecord
    {
        SubscriptionRecord(
            name: "inbox", graphID: id, resource: resource, changeTypes: "created", clientState: "secret", notificationURL: url,
            expiration: id == nil ? nil : at.addingTimeInterval(lifetime), renewedAt: id == nil ? nil : at, managed: true)
    }

    static func graph(_ fields: [String: Any]) throws -> GraphSubscription {
        var json: [String: Any] = ["id": "sub-1", "resource": mail.resource, "changeType": "created", "expirationDateTime": "2027-01-01T00:00:00Z"]
        json.merge(fields) { $1 }
        return try JSONDecoder().decode(GraphSubscription.self, from: JSONSerialization.data(withJSONObject: json))
    }

    // MARK: create, renew

    @Test("nothing stored: create at once; created: wait until half the lifetime, then renew; renewed: wait again")
    func createThenRenew() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mail)
        #expect(upkeep.next(now: Self.t0) == .create(recreating: false))
        upkeep.created(Self.record(), recreating: false, deltaLinkKept: false)
        let half = Self.t0.addingTimeInterval(4230 * 60 / 2)
        #expect(upkeep.next(now: Self.t0) == .wait(until: half))
        #expect(upkeep.next(now: half.addingTimeInterval(-1)) == .wait(until: half))
        #expect(upkeep.next(now: half) == .renew)
        upkeep.renewed(Self.record(at: half), graphCertificateID: nil)
        #expect(upkeep.next(now: half) == .wait(until: half.addingTimeInterval(4230 * 60 / 2)))
    }

    @Test("a short lifetime (4 minutes or less) is renewed at half; a long one at the latest a minute before expiry")
    func renewalDates() {
        var short = SubscriptionUpkeep(declaration: Self.mail, record: Self.record(lifetime: 200))
        #expect(short.next(now: Self.t0) == .wait(until: Self.t0.addingTimeInterval(100)))
        short.record?.renewedAt = nil  // unknown: measured from now
        #expect(short.next(now: Self.t0.addingTimeInterval(50)) == .wait(until: Self.t0.addingTimeInterval(125)))
        let long = SubscriptionUpkeep(declaration: Self.mail, record: Self.record(lifetime: 3600))
        #expect(long.next(now: Self.t0) == .wait(until: Self.t0.addingTimeInterval(1800)))
    }

    // MARK: failures

    @Test("failures back off 2 s, 4 s, 8 s ... up to maxRetryDelay; a longer Retry-After wins; a success resets")
    func backoff() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mail)
        #expect(upkeep.failed(now: Self.t0, retryAfter: nil, maxRetryDelay: .seconds(900)) == 2)
        #expect(upkeep.next(now: Self.t0) == .wait(until: Self.t0.addingTimeInterval(2)))
        #expect(upkeep.next(now: Self.t0.addingTimeInterval(2)) == .create(recreating: false))
        #expect(upkeep.failed(now: Self.t0, retryAfter: nil, maxRetryDelay: .seconds(900)) == 4)
        #expect(
            upkeep.failed(now: Self.t0, retryAfter: .seconds(1), maxRetryDelay: .seconds(900)) == 8,
            "a shorter Retry-After does not shorten the backoff")
        #expect(upkeep.failed(now: Self.t0, retryAfter: .seconds(120), maxRetryDelay: .seconds(900)) == 120)
        for _ in 0..<20 { upkeep.failed(now: Self.t0, retryAfter: nil, maxRetryDelay: .seconds(900)) }
        #expect(upkeep.failed(now: Self.t0, retryAfter: nil, maxRetryDelay: .seconds(900)) == 900, "capped")
        upkeep.created(Self.record(), recreating: false, deltaLinkKept: false)
        #expect(upkeep.failures == 0 && upkeep.retryAt == .distantPast)
    }

    @Test("the renewal waits for the backoff of a failed one")
    func renewalBackoff() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mail, record: Self.record())
        let half = Self.t0.addingTimeInterval(4230 * 60 / 2)
        upkeep.failed(now: half, retryAfter: nil, maxRetryDelay: .seconds(900))
        #expect(upkeep.next(now: half.addingTimeInterval(1)) == .wait(until: half.addingTimeInterval(2)))
        #expect(upkeep.next(now: half.addingTimeInterval(2)) == .renew)
    }

    @Test(
        "404 on a call: the subscription is lost, its id returned for the listener, pending reauthorize and certificate moves dropped, a create due")
    func lost() {
        var upkeep = SubscriptionUpkeep(declaration: Self.rich("enc-2"), record: Self.record())
        upkeep.certificateDue = true
        upkeep.reauthorizeDue = true
        upkeep.failed(now: Self.t0, retryAfter: nil, maxRetryDelay: .seconds(900))
        #expect(upkeep.lost() == "sub-1")
        #expect(upkeep.graphID == nil && !upkeep.certificateDue && !upkeep.reauthorizeDue)
        #expect(upkeep.next(now: Self.t0) == .create(recreating: true))
        #expect(upkeep.lost() == nil)
    }

    // MARK: lifecycle requests

    @Test("reauthorizationRequired for this subscription: reauthorize at once, even during a backoff; for another id: ignored")
    func reauthorizationRequired() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mail, record: Self.record())
        upkeep.failed(now: Self.t0, retryAfter: .seconds(600), maxRetryDelay: .seconds(900))
        #expect(upkeep.apply(.reauthorizationRequired(graphID: "older")) == .ignored)
        #expect(upkeep.next(now: Self.t0) == .wait(until: Self.t0.addingTimeInterval(4230 * 60 / 2)), "the renewal, later than the backoff")
        #expect(upkeep.apply(.reauthorizationRequired(graphID: "sub-1")) == .reauthorize)
        #expect(upkeep.next(now: Self.t0) == .reauthorize)
        upkeep.reauthorized()
        #expect(upkeep.next(now: Self.t0) == .wait(until: Self.t0.addingTimeInterval(4230 * 60 / 2)))
    }

    @Test("subscriptionRemoved for this subscription: the listener forgets its id, a create is due; for another id: ignored")
    func subscriptionRemoved() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mail, record: Self.record())
        #expect(upkeep.apply(.subscriptionRemoved(graphID: "older")) == .ignored)
        #expect(upkeep.graphID == "sub-1")
        #expect(upkeep.apply(.subscriptionRemoved(graphID: "sub-1")) == .recreate(graphID: "sub-1"))
        #expect(upkeep.next(now: Self.t0) == .create(recreating: true))
        #expect(upkeep.record?.clientState == "secret", "the record stays: the recreate keeps its name and clientState")
    }

    @Test("missed: a resync with resync: delta; ignored without it or for another id")
    func missed() {
        var plain = SubscriptionUpkeep(declaration: Self.mail, record: Self.record())
        #expect(plain.apply(.missed(graphID: "sub-1")) == .ignored)
        var upkeep = SubscriptionUpkeep(declaration: Self.mailWithResync, record: Self.record())
        upkeep.deltaTakenAt = Self.t0
        #expect(upkeep.apply(.missed(graphID: "older")) == .ignored)
        #expect(upkeep.apply(.missed(graphID: "sub-1")) == .resync)
        #expect(upkeep.resyncReason == "missed")
        #expect(upkeep.next(now: Self.t0) == .resync)
        upkeep.resynced(takenAt: Self.t0.addingTimeInterval(5))
        #expect(upkeep.resyncReason == nil && upkeep.deltaTakenAt == Self.t0.addingTimeInterval(5))
    }

    // MARK: resync: delta

    @Test("resync: delta: a first create takes a baseline; a recreate with the deltaLink kept catches up; without it, a baseline")
    func createsAndDelta() {
        var first = SubscriptionUpkeep(declaration: Self.mailWithResync)
        first.created(Self.record(), recreating: false, deltaLinkKept: false)
        #expect(first.baselineDue && first.resyncReason == nil)
        #expect(first.next(now: Self.t0) == .resync)

        var again = SubscriptionUpkeep(declaration: Self.mailWithResync)
        again.created(Self.record(), recreating: true, deltaLinkKept: true)
        #expect(!again.baselineDue && again.resyncReason == "recreated")

        var lostLink = SubscriptionUpkeep(declaration: Self.mailWithResync)
        lostLink.created(Self.record(), recreating: true, deltaLinkKept: false)
        #expect(lostLink.baselineDue)
    }

    @Test("resync: delta: a reauthorize is followed by the delta (delivery may have paused)")
    func reauthorizeThenDelta() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mailWithResync, record: Self.record())
        upkeep.deltaTakenAt = Self.t0
        _ = upkeep.apply(.reauthorizationRequired(graphID: "sub-1"))
        upkeep.reauthorized()
        #expect(upkeep.resyncReason == "reauthorizationRequired")
        #expect(upkeep.next(now: Self.t0) == .resync)
    }

    @Test("resync: delta: the hourly refresh comes before the renewal; when both are due the renewal goes first")
    func refresh() {
        var upkeep = SubscriptionUpkeep(declaration: Self.mailWithResync, record: Self.record(lifetime: 3 * 3600), deltaRefresh: .seconds(3600))
        upkeep.deltaTakenAt = Self.t0
        let refresh = Self.t0.addingTimeInterval(3600)
        #expect(upkeep.next(now: Self.t0) == .wait(until: refresh))
        #expect(upkeep.next(now: refresh) == .resync)
        // Renewal at half of 3 h: 1.5 h. Both due at 1.5 h: renew first.
        let renewal = Self.t0.addingTimeInterval(5400)
        #expect(upkeep.next(now: renewal) == .renew)
    }

    // MARK: rich notifications

    @Test("a renewal answer that still names another certificate id puts a certificate PATCH first, before a reauthorize")
    func certificateAfterRenewal() {
        var upkeep = SubscriptionUpkeep(declaration: Self.rich("enc-2"), record: Self.record())
        upkeep.renewed(Self.record(), graphCertificateID: "enc-2")
        #expect(!upkeep.certificateDue)
        upkeep.renewed(Self.record(), graphCertificateID: nil)
        #expect(!upkeep.certificateDue, "Graph left the id out: nothing known to move")
        upkeep.renewed(Self.record(), graphCertificateID: "enc-1")
        _ = upkeep.apply(.reauthorizationRequired(graphID: "sub-1"))
        #expect(upkeep.next(now: Self.t0) == .updateCertificate)
        upkeep.certificateUpdated(Self.record())
        #expect(upkeep.next(now: Self.t0) == .reauthorize)
    }

    // MARK: start

    @Test(
        "start: a record no longer declared is retired; a changed resource, change types or URL replaced; one without Graph's id awaits its create; else checked"
    )
    func startDecisions() {
        let record = Self.record()
        #expect(SubscriptionUpkeep.start(stored: record, declaration: nil, notificationURL: Self.url) == .retire)
        #expect(SubscriptionUpkeep.start(stored: record, declaration: Self.mail, notificationURL: Self.url) == .check)
        #expect(
            SubscriptionUpkeep.start(stored: record, declaration: Self.mail, notificationURL: "https://moved.example.test/notifications") == .replace)
        var otherTypes = Self.mail
        otherTypes.changeTypes = ["created", "updated"]
        #expect(SubscriptionUpkeep.start(stored: record, declaration: otherTypes, notificationURL: Self.url) == .replace)
        #expect(
            SubscriptionUpkeep.start(
                stored: Self.record(resource: "users/bob@contoso.com/messages"), declaration: Self.mail, notificationURL: Self.url) == .replace)
        #expect(SubscriptionUpkeep.start(stored: Self.record(id: nil), declaration: Self.mail, notificationURL: Self.url) == .awaitCreate)
    }

    @Test("start: Graph's copy is reused, replaced when includeResourceData differs, moved when its certificate id differs; fields left out match")
    func graphChecks() throws {
        #expect(SubscriptionUpkeep.check(try Self.graph([:]), against: Self.mail) == .reuse)
        #expect(SubscriptionUpkeep.check(try Self.graph(["includeResourceData": false]), against: Self.mail) == .reuse)
        #expect(
            SubscriptionUpkeep.check(try Self.graph(["includeResourceData": true, "encryptionCertificateId": "enc-1"]), against: Self.mail)
                == .replace)
        #expect(SubscriptionUpkeep.check(try Self.graph(["includeResourceData": false]), against: Self.rich("enc-1")) == .replace)
        #expect(
            SubscriptionUpkeep.check(try Self.graph(["includeResourceData": true, "encryptionCertificateId": "enc-1"]), against: Self.rich("enc-1"))
                == .reuse)
        #expect(
            SubscriptionUpkeep.check(try Self.graph(["includeResourceData": true, "encryptionCertificateId": "enc-1"]), against: Self.rich("enc-2"))
                == .updateCertificate)
        #expect(SubscriptionUpkeep.check(try Self.graph(["includeResourceData": true]), against: Self.rich("enc-2")) == .reuse)
    }

    @Test(
        "start with resync: delta: no deltaLink (or another resource's) takes a baseline; an unfinished resync resumes; over 4 h without a sign of life resyncs; a short stop does not"
    )
    func startResync() {
        func upkeep(lastNotification: Date? = nil) -> SubscriptionUpkeep {
            var record = Self.record()
            record.lastNotificationAt = lastNotification
            return SubscriptionUpkeep(declaration: Self.mailWithResync, record: record)
        }
        let limit: TimeInterval = 4 * 3600
        var none = upkeep()
        #expect(none.planStartResync(stored: nil, now: Self.t0, outageLimit: limit) == .baseline)
        #expect(none.baselineDue && none.next(now: Self.t0) == .resync)

        var other = upkeep()
        let otherLink = StoredDeltaLink(link: "l", resource: "users/bob@contoso.com/mailFolders('Inbox')/messages", takenAt: Self.t0)
        #expect(other.planStartResync(stored: otherLink, now: Self.t0, outageLimit: limit) == .baseline)

        let link = StoredDeltaLink(link: "l", resource: Self.mail.resource, takenAt: Self.t0)
        var short = upkeep()
        #expect(short.planStartResync(stored: link, now: Self.t0.addingTimeInterval(limit - 1), outageLimit: limit) == .none)
        #expect(short.deltaTakenAt == Self.t0 && short.resyncReason == nil)

        var down = upkeep()
        #expect(down.planStartResync(stored: link, now: Self.t0.addingTimeInterval(limit + 1), outageLimit: limit) == .outage(lastSeen: Self.t0))
        #expect(down.resyncReason == "outage")

        // A notification since the deltaLink counts as a sign of life.
        var recent = upkeep(lastNotification: Self.t0.addingTimeInterval(3600))
        #expect(recent.planStartResync(stored: link, now: Self.t0.addingTimeInterval(limit + 1), outageLimit: limit) == .none)

        var unfinished = upkeep()
        var pending = link
        pending.pending = "missed"
        #expect(
            unfinished.planStartResync(stored: pending, now: Self.t0.addingTimeInterval(limit + 1), outageLimit: limit) == .resume(reason: "missed"))
        #expect(unfinished.resyncReason == "missed")

        var plain = SubscriptionUpkeep(declaration: Self.mail, record: Self.record())
        #expect(plain.planStartResync(stored: nil, now: Self.t0, outageLimit: limit) == .none, "without resync: delta, nothing")
    }

}
