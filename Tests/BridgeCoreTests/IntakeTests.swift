import BridgeCore
import BridgeStore
import Foundation
import Testing
import TestSupport

@Suite("Notification intake")
struct IntakeTests {
    static let subscriptionID = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"

    struct Fixture {
        let directory = TemporaryDirectory()
        let store: SQLiteStateStore
        let intake: NotificationIntake

        init(store override: (any StateStore)? = nil, journalDeadline: Duration? = nil, clock: any Clock<Duration> = ContinuousClock()) throws {
            store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
            let subscriptions = SubscriptionDirectory([
                SubscriptionEntry(name: "audit-feed", id: IntakeTests.subscriptionID, resource: "users/alice/messages", clientState: "secretClientValue")
            ])
            intake = NotificationIntake(
                directory: subscriptions, store: override ?? store, doorbell: Doorbell(), journalDeadline: journalDeadline, clock: clock,
                logger: quietLogger)
        }
    }

    static func body(_ items: [String]) -> [UInt8] { Array(#"{"value":[\#(items.joined(separator: ","))]}"#.utf8) }

    static func item(id: String = subscriptionID, clientState: String = "secretClientValue", etag: String = "W/\"1\"", resource: String = "Users/1/Messages/1") -> String {
        ##"{"subscriptionId":"\##(id)","clientState":"\##(clientState)","changeType":"created","resource":"\##(resource)","tenantId":"t","resourceData":{"@odata.type":"#Microsoft.Graph.Message","@odata.etag":\##(JSONValue.string(etag).serializedString),"id":"1"}}"##
    }

    /// The first version of ``NotificationIntake/deduplicationKey(subscription:changeType:resource:etag:)``
    /// (on characters), whose keys state files hold: the current one must give the same keys.
    static func firstDeduplicationKey(subscription: String, changeType: String, resource: String, etag: String) -> String {
        var item = Substring(resource.split(separator: "/").last ?? "")
        if let open = item.firstIndex(of: "("), item.hasSuffix(")") {
            item = item[item.index(after: open)..<item.index(before: item.endIndex)]
            if item.hasPrefix("'"), item.hasSuffix("'"), item.count >= 2 { item = item.dropFirst().dropLast() }
        }
        let deleted = changeType == "deleted"
        return [subscription, deleted ? "deleted" : "changed", String(item), deleted ? "" : etag].joined(separator: "\u{1F}")
    }

    @Test(
        "deduplication keys are the ones the first, character-based version made (state files hold them)",
        arguments: [
            "Users/0f7e/Messages/AAMkAGI2TG93AAA=", "users/a@b.example/mailFolders('Inbox')/messages('AAMk1')",
            "Users/1/Messages(AAMk2)", "Users/1/Messages('')", "Users/1/Messages(')", "Users/1/Messages()", "x/('a'",
            "Users/1/Messages/AAMk3/", "a//b//", "/", "", "AAMk4", "Users/jö@x.example/Messages/Ä€😀", "Users/1/Messages('Ä')",
            "Users/1/Events('a(b)c')", "(", ")", "()", "('')",
        ])
    func deduplicationKeyKeepsItsForm(resource: String) {
        for changeType in ["created", "updated", "deleted"] {
            for etag in ["W/\"7\"", ""] {
                #expect(
                    NotificationIntake.deduplicationKey(subscription: "inbox", changeType: changeType, resource: resource, etag: etag)
                        == Self.firstDeduplicationKey(subscription: "inbox", changeType: changeType, resource: resource, etag: etag))
            }
        }
    }

    @Test("a subscription being created: its first notification (id not known yet) is accepted by its clientState; a stranger's is not")
    func expectedSubscription() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let subscriptions = SubscriptionDirectory()
        let intake = NotificationIntake(directory: subscriptions, store: store, doorbell: Doorbell(), logger: quietLogger)
        let newID = "0f0f0f0f-1111-4222-8333-444444444444"
        let early = Self.body([Self.item(id: newID, clientState: "fresh-secret-of-64-chars", etag: "W/\"e\"")])

        #expect(await intake.receive(body: early, endpoint: .notifications).unknownSubscription == 1, "nothing expected yet")
        subscriptions.expect(name: "inbox", resource: "users/alice/messages", clientState: "fresh-secret-of-64-chars")
        let outcome = await intake.receive(body: early, endpoint: .notifications)
        #expect(outcome.status == 202 && outcome.accepted == 1)
        let journaled = try await store.unroutedEvents(limit: 10)
        #expect(journaled.count == 1)
        #expect(journaled.first?.event.subscription.name == "inbox")
        #expect(journaled.first?.event.subscription.id == newID)

        let stranger = Self.body([Self.item(id: "99999999-1111-4222-8333-444444444444", clientState: "guessed", etag: "W/\"s\"")])
        #expect(await intake.receive(body: stranger, endpoint: .notifications).unknownSubscription == 1)

        // Once the create's answer is in, the entry is known by id and no longer expected.
        subscriptions.upsert(SubscriptionEntry(name: "inbox", id: newID, resource: "users/alice/messages", clientState: "fresh-secret-of-64-chars"))
        let otherID = Self.body([Self.item(id: "12121212-1111-4222-8333-444444444444", clientState: "fresh-secret-of-64-chars", etag: "W/\"o\"")])
        #expect(await intake.receive(body: otherID, endpoint: .notifications).unknownSubscription == 1)
    }

    @Test("a POST with encrypted content: every change item keeps the POST's validationTokens for the delivery side; lifecycle items and plain POSTs keep none")
    func richBatchAttachments() async throws {
        let fixture = try Fixture()
        let encrypted = #""encryptedContent":{"data":"ZGF0YQ==","dataKey":"a2V5","dataSignature":"c2ln","encryptionCertificateId":"enc-1"}"#
        let rich = Self.item(etag: "W/\"r\"", resource: "Users/1/Messages/r").dropLast() + "," + encrypted + "}"
        let plain = Self.item(etag: "W/\"p\"", resource: "Users/1/Messages/p")
        let lifecycle = #"{"subscriptionId":"\#(Self.subscriptionID)","clientState":"secretClientValue","lifecycleEvent":"missed"}"#
        let body = #"{"value":[\#(rich),\#(plain),\#(lifecycle)],"validationTokens":["t1","t2"]}"#
        let outcome = await fixture.intake.receive(body: Array(body.utf8), endpoint: .notifications)
        #expect(outcome.status == 202 && outcome.accepted == 3)
        let pending = try await fixture.store.unroutedEvents(limit: 10)
        #expect(pending.count == 3)
        let tokens: JSONValue = .array([.string("t1"), .string("t2")])
        #expect(pending[0].attachment?["validationTokens"] == tokens)
        #expect(pending[0].attachment?["encryptedContent"]?["encryptionCertificateId"]?.stringValue == "enc-1")
        #expect(pending[1].attachment?["validationTokens"] == tokens, "the plain item is vouched for by the same POST")
        #expect(pending[1].attachment?["encryptedContent"] == nil)
        #expect(pending[2].attachment == nil, "lifecycle items are acted on at intake and keep no tokens")
        #expect(pending.allSatisfy { $0.event.data == nil }, "nothing is decrypted before the 202")

        // Tokens without any encrypted content: nothing to check later (as Graph's SDKs do).
        let second = try Fixture()
        let plainPOST = #"{"value":[\#(plain)],"validationTokens":["t1"]}"#
        #expect(await second.intake.receive(body: Array(plainPOST.utf8), endpoint: .notifications).accepted == 1)
        #expect(try await second.store.unroutedEvents(limit: 10).first?.attachment == nil)
    }

    @Test("the shared Graph sample is journaled as an event of SPEC section 6", .enabled(if: sharedFixturesPresent, "needs ../shared/graph-vectors beside the checkout"))
    func sample() async throws {
        let fixture = try Fixture()
        let samples = try JSONParser.parse(try sharedFile("graph-vectors/notification-samples.json"))
        let body = try #require(samples["basic_message_created"]).serialized()
        let outcome = await fixture.intake.receive(body: body, endpoint: .notifications)
        #expect(outcome.status == 202)
        #expect(outcome.accepted == 1)
        let event = try #require(try await fixture.store.unroutedEvents(limit: 10).first?.event)
        #expect(event.subscription == SubscriptionReference(name: "audit-feed", id: Self.subscriptionID, resource: "users/alice/messages"))
        #expect(event.changeType == "created")
        #expect(event.resource == "Users/622eaaff-0683-4862-9de4-f2ec83c2bd98/Messages/AAMkAGUwNjQ4ZjIxAAA=")
        #expect(event.resourceData?["id"]?.stringValue == "AAMkAGUwNjQ4ZjIxAAA=")
        #expect(event.tenantId == "84bd8158-6d4d-4958-8b9f-9d6445542f95")
        #expect(event.data == nil)
        #expect(event.json.objectValue?.keys == ["id", "receivedAt", "subscription", "changeType", "resource", "resourceData", "tenantId"])
    }

    @Test("wrong clientState and unknown subscription are dropped and counted, the rest of the batch kept")
    func authentication() async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(body: Self.body([
            Self.item(clientState: "forged", etag: "a"),
            Self.item(clientState: "secretClientValuX", etag: "b"),
            Self.item(id: "00000000-0000-0000-0000-000000000000", etag: "c"),
            Self.item(id: Self.subscriptionID.uppercased(), etag: "d"),
            #"{"clientState":"secretClientValue","changeType":"created"}"#,
        ]), endpoint: .notifications)
        #expect(outcome.status == 202)
        #expect(outcome.wrongClientState == 2)
        #expect(outcome.unknownSubscription == 1)
        #expect(outcome.invalid == 1)
        #expect(outcome.accepted == 1)
        #expect(try await fixture.store.unroutedEvents(limit: 10).count == 1)
    }

    @Test("malformed bodies are 400 and journal nothing", arguments: [
        "not json", "[]", #"{"value":{}}"#, #"{"nothing":[]}"#, #"{"value":[1]}"#, "{\"value\":[" ,
    ])
    func malformed(_ text: String) async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(body: Array(text.utf8), endpoint: .notifications)
        #expect(outcome.status == 400)
        #expect(try await fixture.store.eventCount() == 0)
    }

    @Test("Graph's duplicates become one event")
    func duplicates() async throws {
        let fixture = try Fixture()
        let first = await fixture.intake.receive(body: Self.body([Self.item(), Self.item()]), endpoint: .notifications)
        let again = await fixture.intake.receive(body: Self.body([Self.item()]), endpoint: .notifications)
        let changed = await fixture.intake.receive(body: Self.body([Self.item(etag: "W/\"2\"")]), endpoint: .notifications)
        #expect(first.accepted == 1 && first.duplicates == 1)
        #expect(again.accepted == 0 && again.duplicates == 1)
        #expect(changed.accepted == 1)
        #expect(try await fixture.store.eventCount() == 2)
    }

    @Test("lifecycle events are journaled with lifecycleEvent and no changeType", .enabled(if: sharedFixturesPresent, "needs ../shared/graph-vectors beside the checkout"))
    func lifecycle() async throws {
        let fixture = try Fixture()
        let samples = try JSONParser.parse(try sharedFile("graph-vectors/notification-samples.json"))
        let body = try #require(samples["lifecycle_batch"]).serialized()
        let outcome = await fixture.intake.receive(body: body, endpoint: .lifecycle)
        #expect(outcome.accepted == 3)
        let events = try await fixture.store.unroutedEvents(limit: 10).map(\.event)
        #expect(events.map(\.lifecycleEvent) == ["reauthorizationRequired", "subscriptionRemoved", "missed"])
        #expect(events.allSatisfy { $0.changeType == nil })
    }

    @Test("a failing journal answers 503 and acknowledges nothing")
    func journalFailure() async throws {
        let fixture = try Fixture(store: FailingStore())
        let outcome = await fixture.intake.receive(body: Self.body([Self.item()]), endpoint: .notifications)
        #expect(outcome.status == 503)
        #expect(outcome.accepted == 0)
        #expect(fixture.intake.lastJournalFailure != nil)
    }

    @Test("with a journal deadline (a remote store), a write that hangs is given up and answered 503; nothing is acknowledged")
    func journalDeadline() async throws {
        // The store would hang for an hour: only the deadline, on a clock the test moves, ends the request.
        let clock = ManualTestClock(start: Date())
        let fixture = try Fixture(store: FailingStore(hangs: true), journalDeadline: .seconds(5), clock: clock)
        let answer = Task { await fixture.intake.receive(body: Self.body([Self.item()]), endpoint: .notifications) }
        await clock.sleepers(1, until: .seconds(5))
        clock.advance(by: .milliseconds(4_999))
        // Still waiting at 4.999 s: the deadline's timer sleeps on, and only it can end the request.
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(5)])
        clock.advance(by: .milliseconds(1))
        let outcome = await answer.value
        #expect(outcome.status == 503)
        #expect(outcome.accepted == 0)
        #expect(fixture.intake.lastJournalFailure?.contains("did not take the write") == true)
    }

    @Test("constant-time comparison gives the right answers")
    func constantTime() {
        #expect(constantTimeEquals(Array("secret".utf8), Array("secret".utf8)))
        #expect(!constantTimeEquals(Array("secreT".utf8), Array("secret".utf8)))
        #expect(!constantTimeEquals(Array("secret2".utf8), Array("secret".utf8)))
        #expect(!constantTimeEquals(Array("secre".utf8), Array("secret".utf8)))
        #expect(!constantTimeEquals([], Array("secret".utf8)))
    }
}

/// A journal whose disk is gone: every write fails (the store-fault tests of the reliability suite use a real read-only file system).
struct FailingStore: StateStore {
    struct DiskFull: Error {}
    /// The journal waits (cancellably) instead of failing: a remote store that does not answer.
    var hangs = false
    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        if hangs { try await Task.sleep(for: .seconds(3600)) }
        throw DiskFull()
    }
    func unroutedEvents(limit: Int) async throws -> [PendingEvent] { [] }
    func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] { [] }
    func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int { throw DiskFull() }
    func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> { throw DiskFull() }
    func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws { throw DiskFull() }
    func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool { throw DiskFull() }
    func releaseReplica(_ replica: ReplicaID) async throws { throw DiskFull() }
    func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] { throw DiskFull() }
    func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? { nil }
    func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] { [] }
    func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? { nil }
    func recordSuccesses(deliveryIDs: [Int64]) async throws { throw DiskFull() }
    func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws { throw DiskFull() }
    func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws { throw DiskFull() }
    func queueDepths() async throws -> [String: QueueDepth] { [:] }
    func unroutedCount() async throws -> Int { 0 }
    func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage { DeadLetterPage(letters: [], total: 0) }
    func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int { 0 }
    func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int { 0 }
    func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] { [:] }
    func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {}
}

let sharedFixturesPresent = (try? sharedFile("graph-vectors/notification-samples.json")) != nil

/// Reads a file from `../shared` beside the checkout; tests that need it are skipped with a reason when it is absent.
func sharedFile(_ relative: String) throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.deletingLastPathComponent().appendingPathComponent("shared/\(relative)").path
    guard let data = FileManager.default.contents(atPath: path) else {
        throw SharedFixtureMissing(path: path)
    }
    return Array(data)
}

struct SharedFixtureMissing: Error, CustomStringConvertible {
    var path: String
    var description: String { "shared fixture \(path) is absent (tests that read ../shared need it beside the checkout)" }
}
