import BridgeCore
@testable import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import InMemoryLogging
import Logging
import Synchronization
import TestSupport
import Testing

/// `resync: delta` against the simulator's delta queries, with the real listener, intake,
/// journal and delivery engine: what a missed notification costs, and what it does not.
@Suite("delta resync", .timeLimit(.minutes(3)))
struct DeltaResyncTests {
    static let inbox = SubscriptionManager.Declaration(
        name: "inbox", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages", changeTypes: ["created", "updated", "deleted"],
        expiration: nil, includeResourceData: false, resync: true)
    static let linkKey = "resync.deltaLink.inbox"
    static let mailbox = "alice@contoso.com"

    /// The stored delta setting (deltaLink, resource, takenAt) once it differs from `previous` and
    /// no resync is owed (the resync or baseline is then done: its events are journaled before
    /// the link is stored).
    static func storedLink(_ store: SQLiteStateStore, after previous: String?) async throws -> String {
        var link: String?
        let changed = try await eventually {
            link = try await store.setting(linkKey)
            return link != nil && link != previous && link?.contains(#""pending""#) == false
        }
        try #require(changed, "no new deltaLink was stored")
        return try #require(link)
    }

    static func deltaRequests(_ simulator: GraphSimulator) -> [RecordedRequest] {
        simulator.requests.filter { $0.method == "GET" && $0.path.hasSuffix("/messages/delta") }
    }

    /// Creates a message with notifications flowing and waits until it arrives: every event
    /// journaled before it has been delivered by then (one sink, in journal order).
    static func sentinel(_ simulator: GraphSimulator, _ collector: EventCollector, expected count: Int) async throws -> [BridgeEvent] {
        let sentinel = try simulator.createMessage(MessageContent(subject: "sentinel"), in: mailbox)
        let events = await collector.wait(for: count)
        try #require(events.count == count, "got \(events.map { "\($0.changeType ?? $0.lifecycleEvent ?? "?") \($0.resource ?? "")" })")
        #expect(events.last?.resource?.hasSuffix(sentinel.message.id) == true && events.last?.resync == nil)
        return events
    }

    @Test("the baseline taken at create follows every page and emits nothing for what was already there")
    func baselineEmitsNothing() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            simulator.deltaPageSize = 2
            for index in 0..<5 { try simulator.createMessage(MessageContent(subject: "old \(index)"), in: Self.mailbox) }
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                let link = try await Self.storedLink(bridge.store, after: nil)
                #expect(link.contains("$deltatoken="))
                // Five messages, two a page: three pages, the last two by their nextLink.
                let requests = Self.deltaRequests(simulator)
                #expect(requests.count == 3)
                #expect(requests.dropFirst().allSatisfy { $0.query?.contains("$skiptoken=") == true })
                let events = try await Self.sentinel(simulator, collector, expected: 1)
                #expect(events.allSatisfy { $0.resync == nil })
            }
        }
    }

    @Test("missed: replays exactly what changed while notifications were dropped, once each, resync: true; a deleted one as deleted; one Graph also notified is delivered once")
    func missedReplaysChanges() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            let kept = try simulator.createMessage(MessageContent(subject: "kept"), in: Self.mailbox).message
            let read = try simulator.createMessage(MessageContent(subject: "to be read"), in: Self.mailbox).message
            let gone = try simulator.createMessage(MessageContent(subject: "to be deleted"), in: Self.mailbox).message
            try simulator.createMessage(MessageContent(subject: "elsewhere"), in: Self.mailbox, folder: "archive")
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let takenAt = try #require(try await StoredDeltaLink.load("inbox", from: bridge.store)?.takenAt)
                let id = try #require(simulator.subscriptions.first?.id)

                // Notified as usual: in the delta too, but delivered once.
                let notified = try simulator.createMessage(MessageContent(subject: "notified"), in: Self.mailbox).message
                let first = await collector.wait(for: 1)
                #expect(first.map(\.resource) == ["Users/\(notified.userID)/Messages/\(notified.id)"])

                simulator.dropsNotifications = true
                let missed = try simulator.createMessage(MessageContent(subject: "missed"), in: Self.mailbox).message
                try simulator.updateMessage(id: read.id) { $0.isRead = true }
                try simulator.deleteMessage(id: gone.id)
                try simulator.createMessage(MessageContent(subject: "missed elsewhere"), in: Self.mailbox, folder: "archive")
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.missed, subscriptionID: id)

                _ = try await Self.storedLink(bridge.store, after: baseline)
                // notified, missed (lifecycle), three resync events, the sentinel.
                let events = try await Self.sentinel(simulator, collector, expected: 6)
                #expect(events[1].lifecycleEvent == "missed")
                let resynced = events.filter { $0.resync == true }
                #expect(resynced.count == 3)
                var byID: [String: BridgeEvent] = [:]
                for event in resynced { byID[try #require(event.resourceData?["id"]?.stringValue)] = event }
                #expect(Set(byID.keys) == [missed.id, read.id, gone.id])
                #expect(byID[missed.id]?.changeType == "created", "created after the baseline, in its second or later")
                // Graph's createdDateTime has whole seconds: a mail created in the baseline's own
                // second (this test is that fast) cannot be told from one created after it.
                let readInBaselineSecond = read.createdDateTime.timeIntervalSince1970.rounded(.down) >= takenAt.timeIntervalSince1970.rounded(.down)
                #expect(byID[read.id]?.changeType == (readInBaselineSecond ? "created" : "updated"))
                #expect(byID[gone.id]?.changeType == "deleted")
                #expect(byID[read.id]?.resource == "users/alice@contoso.com/mailFolders('Inbox')/messages/\(read.id)")
                #expect(byID[read.id]?.resourceData?["@odata.etag"]?.stringValue == simulator.messages.first { $0.id == read.id }?.etag)
                #expect(resynced.allSatisfy { $0.subscription.id == id && $0.subscription.name == "inbox" })
                #expect(resynced.allSatisfy { $0.json.objectValue?["resync"] == .bool(true) })
                #expect(!events.contains { $0.resourceData?["id"]?.stringValue == kept.id })
                // Delivered once: the notified message appears only as Graph's own event.
                #expect(events.filter { $0.resourceData?["id"]?.stringValue == notified.id }.count == 1)
            }
        }
    }

    @Test("410 SyncStateNotFound takes a new baseline, emits nothing, and says that changes may have been missed")
    func expiredTokenTakesNewBaseline() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        let log = InMemoryLogHandler()
        let logger = Logger(label: "test", factory: { _ in log })
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }, logger: logger
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                simulator.expireDeltaTokens()
                simulator.dropsNotifications = true
                try simulator.createMessage(MessageContent(subject: "lost"), in: Self.mailbox)
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.missed, subscriptionID: id)

                let fresh = try await Self.storedLink(bridge.store, after: baseline)
                #expect(fresh.contains("$deltatoken="))
                #expect(simulator.requests.contains { $0.path.hasSuffix("/messages/delta") && $0.status == 410 })
                let events = try await Self.sentinel(simulator, collector, expected: 2)
                #expect(events.first?.lifecycleEvent == "missed")
                #expect(!events.contains { $0.resync == true })
                let warnings = log.entries.filter { $0.level == .warning && "\($0.message)".contains("410 SyncStateNotFound") }
                #expect(warnings.count == 1)
                #expect(warnings.contains { "\($0.message)".contains("may have been missed") })
            }
        }
    }

    @Test("subscriptionRemoved: once the subscription is created again, what changed in between is replayed")
    func resyncAfterRecreate() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                // Graph removes the subscription: nothing notifies until it exists again.
                try simulator.sendLifecycleEvent(.subscriptionRemoved, subscriptionID: id)
                let between = try simulator.createMessage(MessageContent(subject: "between"), in: Self.mailbox).message
                #expect(try await eventually { simulator.subscriptions.contains { $0.id != id } })

                _ = try await Self.storedLink(bridge.store, after: baseline)
                let events = try await Self.sentinel(simulator, collector, expected: 3)
                #expect(events[0].lifecycleEvent == "subscriptionRemoved")
                let replacement = try #require(simulator.subscriptions.first?.id)
                #expect(events[1].resync == true && events[1].resourceData?["id"]?.stringValue == between.id)
                #expect(events[1].subscription.id == replacement)
            }
        }
    }

    @Test("reauthorizationRequired: after the reauthorize, the delta is followed")
    func resyncAfterReauthorization() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                // Delivery paused before the bridge answered the challenge.
                simulator.dropsNotifications = true
                let paused = try simulator.createMessage(MessageContent(subject: "while paused"), in: Self.mailbox).message
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.reauthorizationRequired, subscriptionID: id)
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions/\(id)/reauthorize" && $0.status == 204 }

                _ = try await Self.storedLink(bridge.store, after: baseline)
                let events = try await Self.sentinel(simulator, collector, expected: 3)
                #expect(events[0].lifecycleEvent == "reauthorizationRequired")
                #expect(events[1].resync == true && events[1].resourceData?["id"]?.stringValue == paused.id)
            }
        }
    }

    @Test("the periodic refresh keeps the deltaLink recent and emits nothing for what Graph notified")
    func refreshEmitsNoDuplicates() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }, deltaRefresh: .seconds(3)
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let notified = try simulator.createMessage(MessageContent(subject: "notified"), in: Self.mailbox).message
                #expect(await collector.wait(for: 1).count == 1)
                try simulator.updateMessage(id: notified.id) { $0.isRead = true }
                #expect(await collector.wait(for: 2).count == 2)
                // The refresh sees both changes (one item, its current version): already delivered.
                let refreshed = try await Self.storedLink(bridge.store, after: baseline)
                let takenAt = try #require(try await StoredDeltaLink.load("inbox", from: bridge.store)?.takenAt)
                #expect(takenAt > notified.lastModifiedDateTime)
                #expect(refreshed.contains("$deltatoken="))
                let events = try await Self.sentinel(simulator, collector, expected: 3)
                #expect(!events.contains { $0.resync == true })
            }
        }
    }

    @Test("a resync cut short by a stop is resumed at the next start")
    func interruptedResyncResumes() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        let port = try reservedLoopbackPort()  // the same public URL across restarts, as in production
        try await withSimulator { simulator in
            let state = directory.file("state.sqlite")
            var lost: SimulatedMessage?
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, declarations: [Self.inbox], port: port) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                // The resync's delta query hangs at Graph; the bridge is stopped meanwhile.
                simulator.injectFault(.delay(.seconds(5)), on: .delta)
                simulator.dropsNotifications = true
                lost = try simulator.createMessage(MessageContent(subject: "lost"), in: Self.mailbox).message
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.missed, subscriptionID: id)
                let owed = try await eventually { try await bridge.store.setting(Self.linkKey)?.contains(#""pending":"missed""#) == true }
                #expect(owed)
                _ = baseline
            }
            simulator.clearFaults()
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: state, declarations: [Self.inbox], port: port,
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                _ = try await Self.storedLink(bridge.store, after: nil)
                // The `missed` journaled before the stop, the resumed resync's event, the sentinel.
                let events = try await Self.sentinel(simulator, collector, expected: 3)
                #expect(events[0].lifecycleEvent == "missed")
                #expect(events[1].resync == true && events[1].resourceData?["id"]?.stringValue == lost?.id)
            }
        }
    }

    @Test("a subscription removed from the configuration takes its deltaLink with it")
    func removedSubscriptionForgetsDeltaLink() async throws {
        let directory = TemporaryDirectory()
        try await withSimulator { simulator in
            let state = directory.file("state.sqlite")
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, declarations: [Self.inbox]) { bridge in
                _ = try await Self.storedLink(bridge.store, after: nil)
            }
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, declarations: []) { bridge in
                // The record goes first, then its deltaLink: wait for both.
                let forgotten = try await eventually {
                    let records = try await bridge.store.subscriptionRecords()
                    let link = try await bridge.store.setting(Self.linkKey)
                    return records.isEmpty && link == nil
                }
                #expect(forgotten, "record and deltaLink both gone")
            }
        }
    }

    @Test("fetch: reads a resync event's item like a notified one")
    func fetchEnrichesResyncEvents() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        let http = CurlClient()
        try await withSimulator { simulator in
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http), targets: ["inbox": .init(resource: Self.inbox.resource, select: ["subject"])], logger: quiet)
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: enricher) }
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                simulator.dropsNotifications = true
                let missed = try simulator.createMessage(MessageContent(subject: "read by fetch"), in: Self.mailbox).message
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.missed, subscriptionID: id)
                _ = try await Self.storedLink(bridge.store, after: baseline)
                let events = try await Self.sentinel(simulator, collector, expected: 3)
                let resynced = try #require(events.first { $0.resync == true })
                #expect(resynced.resourceData?["id"]?.stringValue == missed.id)
                #expect(resynced.data?["subject"]?.stringValue == "read by fetch")
            }
        }
        await http.shutdown()
    }

    @Test("a resync over more items than a page follows every nextLink to the deltaLink")
    func resyncPages() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        try await withSimulator { simulator in
            simulator.deltaPageSize = 3
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.inbox],
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                let baseline = try await Self.storedLink(bridge.store, after: nil)
                let id = try #require(simulator.subscriptions.first?.id)
                let before = Self.deltaRequests(simulator).count
                simulator.dropsNotifications = true
                var ids: Set<String> = []
                for index in 0..<8 { ids.insert(try simulator.createMessage(MessageContent(subject: "burst \(index)"), in: Self.mailbox).message.id) }
                simulator.dropsNotifications = false
                try simulator.sendLifecycleEvent(.missed, subscriptionID: id)

                _ = try await Self.storedLink(bridge.store, after: baseline)
                // 8 items, 3 a page: the deltaLink and two nextLinks.
                let resyncRequests = Self.deltaRequests(simulator).dropFirst(before)
                #expect(resyncRequests.count == 3)
                #expect(resyncRequests.first?.query?.contains("$deltatoken=") == true)
                let events = try await Self.sentinel(simulator, collector, expected: 10)
                let resynced = events.filter { $0.resync == true }
                #expect(resynced.count == 8)
                #expect(Set(resynced.compactMap { $0.resourceData?["id"]?.stringValue }) == ids)
            }
        }
    }

    @Test("a start after more than 4 h without a notification, renewal or delta query resyncs; a short restart does not")
    func resyncsAfterLongOutage() async throws {
        let directory = TemporaryDirectory()
        let collector = EventCollector()
        let port = try reservedLoopbackPort()  // the same public URL across restarts, as in production
        try await withSimulator { simulator in
            let state = directory.file("state.sqlite")
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, declarations: [Self.inbox], port: port) { bridge in
                _ = try await Self.storedLink(bridge.store, after: nil)
            }
            // The bridge is down; Graph gives up on what it could not deliver.
            simulator.dropsNotifications = true
            let lost = try simulator.createMessage(MessageContent(subject: "lost while down"), in: Self.mailbox).message
            simulator.dropsNotifications = false
            // A short restart: Graph would still retry what it could not deliver; no resync.
            let shortRestart = EventCollector()
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: state, declarations: [Self.inbox], port: port,
                engine: { shortRestart.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                #expect(try await eventually { bridge.manager.isReady })
                let events = try await Self.sentinel(simulator, shortRestart, expected: 1)
                #expect(!events.contains { $0.resync == true })
            }
            let deltaCalls = Self.deltaRequests(simulator).count

            // Five hours ago, as far as the store knows.
            let link = try await Self.age(state, by: 5 * 3600)
            let log = InMemoryLogHandler()
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: state, declarations: [Self.inbox], port: port,
                engine: { collector.engine(store: $0, enricher: NoEnrichment()) }, logger: Logger(label: "test", factory: { _ in log })
            ) { bridge in
                #expect(deltaCalls == 1, "only the baseline before the long outage")
                _ = try await Self.storedLink(bridge.store, after: link)
                let events = try await Self.sentinel(simulator, collector, expected: 2)
                #expect(events.first?.resync == true && events.first?.resourceData?["id"]?.stringValue == lost.id)
                #expect(log.entries.contains { $0.level == .warning && "\($0.message)".contains("down longer than Graph retries") })
            }
        }
    }

    /// Moves the stored renewal, last notification and delta query `seconds` into the past; returns the stored delta setting.
    static func age(_ state: String, by seconds: TimeInterval) async throws -> String {
        let store = try SQLiteStateStore(path: state, logger: quiet)
        let old = Date().addingTimeInterval(-seconds)
        var record = try #require(try await store.subscriptionRecords().first)
        record.renewedAt = old
        record.lastNotificationAt = old
        try await store.saveSubscription(record)
        var stored = try #require(try await StoredDeltaLink.load("inbox", from: store))
        stored.takenAt = old
        try await stored.save("inbox", to: store)
        return try #require(try await store.setting(linkKey))
    }

    @Test("resync events are serialized with resync: true, other events without the field")
    func serialization() throws {
        let reference = SubscriptionReference(name: "inbox", id: "sub", resource: "users/a/messages")
        let resynced = BridgeEvent(id: "e1", receivedAt: Date(), subscription: reference, changeType: "updated", resync: true, resource: "users/a/messages/m")
        let plain = BridgeEvent(id: "e2", receivedAt: Date(), subscription: reference, changeType: "updated", resync: false, resource: "users/a/messages/m")
        let text = String(decoding: resynced.encoded(), as: UTF8.self)
        #expect(text.contains(#""resync":true"#))
        #expect(!String(decoding: plain.encoded(), as: UTF8.self).contains("resync"))
        #expect(try BridgeEvent(encoded: resynced.encoded()) == resynced)
        #expect(try BridgeEvent(encoded: plain.encoded()).resync == nil)
    }

    @Test("the resync event's deduplication key is the notification's: same item and etag, whatever path names it")
    func deduplicationKeys() throws {
        let reference = SubscriptionReference(name: "inbox", id: "sub", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages")
        let item: BridgeCore.JSONValue = .object(["@odata.etag": .string("W/\"7\""), "id": .string("AAMkX="), "createdDateTime": .string("2020-01-01T00:00:00Z")])
        let entry = try #require(DeltaResync.entry(for: item, subscription: reference, declaredResource: reference.resource!, since: Date(), now: Date()))
        #expect(entry.event.changeType == "updated")
        let notified = NotificationIntake.deduplicationKey(subscription: "inbox", changeType: "created", resource: "Users/0f7e/Messages/AAMkX=", etag: "W/\"7\"")
        #expect(entry.deduplicationKey == notified)
        let removed: BridgeCore.JSONValue = .object(["id": .string("AAMkX="), "@removed": .object(["reason": .string("deleted")])])
        let deletion = try #require(DeltaResync.entry(for: removed, subscription: reference, declaredResource: reference.resource!, since: Date(), now: Date()))
        #expect(deletion.event.changeType == "deleted")
        #expect(deletion.deduplicationKey == NotificationIntake.deduplicationKey(
            subscription: "inbox", changeType: "deleted", resource: "Users('0f7e')/Messages('AAMkX=')", etag: "W/\"8\""))
    }

    @Test("an item created in the same second as the baseline, after it, is created: Graph's createdDateTime has whole seconds")
    func createdInTheBaselineSecond() throws {
        let reference = SubscriptionReference(name: "inbox", id: "sub", resource: "users/a/messages")
        let since = Date(timeIntervalSince1970: 1_796_551_205.750)  // 2026-12-06T10:00:05.750Z
        func changeType(created: String) throws -> String? {
            let item: BridgeCore.JSONValue = .object(["@odata.etag": .string("W/\"1\""), "id": .string("m"), "createdDateTime": .string(created)])
            return try #require(DeltaResync.entry(for: item, subscription: reference, declaredResource: reference.resource!, since: since, now: since)).event.changeType
        }
        #expect(try changeType(created: "2026-12-06T10:00:05Z") == "created", "the baseline's own second")
        #expect(try changeType(created: "2026-12-06T10:00:06Z") == "created")
        #expect(try changeType(created: "2026-12-06T10:00:04Z") == "updated", "a second before the baseline: it was there already")
    }
}
