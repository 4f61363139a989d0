import Foundation
import Synchronization
import Testing

@testable import BridgeCore

/// The bounded activity feed behind `/events` and the status page, with an injected clock.
@Suite("activity feed")
struct ActivityFeedTests {
    /// A clock that moves only when told.
    final class TestClock: Sendable {
        private let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func read() -> Date { now.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
    }

    static func event(_ id: String) -> BridgeEvent {
        BridgeEvent(id: id, receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: "s", resource: nil), changeType: "created")
    }

    @Test("ids only grow, also when the clock stands still; a resume gets exactly what came after its id")
    func idsAndResume() {
        let clock = TestClock()
        let feed = ActivityFeed(capacity: 8, now: clock.read)
        for name in ["a", "b", "c"] { feed.record(.routed(Self.event(name), sinks: [])) }
        let held = feed.subscribe(after: nil)
        #expect(held.missed == [])
        let all = feed.subscribe(after: Int64(clock.read().timeIntervalSince1970 * 1_000_000) - 1).missed ?? []
        #expect(all.count == 3)
        #expect(all.map(\.id) == all.map(\.id).sorted() && Set(all.map(\.id)).count == 3)
        #expect(feed.subscribe(after: all[0].id).missed?.map(\.id) == Array(all.map(\.id).dropFirst()))
        #expect(feed.subscribe(after: all[2].id).missed == [])
        // An id from before the feed began: the feed cannot know what it missed.
        #expect(feed.subscribe(after: 5).missed == nil)
    }

    @Test("past its capacity the feed forgets the oldest entries, and a resume from before them falls back (nil)")
    func eviction() {
        let clock = TestClock()
        let feed = ActivityFeed(capacity: 4, now: clock.read)
        let started = Int64(clock.read().timeIntervalSince1970 * 1_000_000)
        for index in 0..<10 {
            clock.advance(1)
            feed.record(.routed(Self.event("e\(index)"), sinks: []))
        }
        #expect(feed.subscribe(after: started - 1).missed == nil, "the first entries are gone")
        let recent = feed.subscribe(after: Int64(clock.read().timeIntervalSince1970 * 1_000_000) - 2_500_000).missed
        #expect(recent?.count == 3, "the entries of the last 2.5 seconds are still held")
        #expect(feed.subscribe(after: Int64(clock.read().timeIntervalSince1970 * 1_000_000) - 9_500_000).missed == nil, "evicted")
    }

    @Test("the snapshot: the last 100 routed events newest first with each sink's outcome, per-sink failures and last error, no data")
    func snapshot() throws {
        let feed = ActivityFeed()
        for index in 0..<105 {
            var event = Self.event("e\(index)")
            event.data = .object(["subject": "secret subject"])
            feed.record(.routed(event, sinks: ["audit", "chat"]))
        }
        feed.record(.delivered(eventID: "e104", sink: "audit", outcome: .success, attempt: 1))
        feed.record(.delivered(eventID: "e104", sink: "chat", outcome: .retry, attempt: 1, error: "HTTP 503"))
        feed.record(.delivered(eventID: "e104", sink: "chat", outcome: .deadLetter, attempt: 2, error: "HTTP 400"))
        let snapshot = feed.snapshot()
        let events = try #require(snapshot["events"]?.arrayValue)
        #expect(events.count == 100)
        #expect(events.first?["id"]?.stringValue == "e104" && events.last?["id"]?.stringValue == "e5")
        #expect(events.first?["outcomes"]?["audit"]?["outcome"]?.stringValue == "success")
        #expect(events.first?["outcomes"]?["chat"]?["outcome"]?.stringValue == "dead_letter")
        #expect(events.first?["outcomes"]?["chat"]?["error"]?.stringValue == "HTTP 400")
        #expect(!snapshot.serializedString.contains("secret subject"))
        let sinks = try #require(snapshot["sinkActivity"]?.arrayValue)
        let chat = try #require(sinks.first { $0["name"]?.stringValue == "chat" })
        #expect(chat["failures"]?.scalarText == "2" && chat["lastError"]?.stringValue == "HTTP 400")
        #expect(sinks.first { $0["name"]?.stringValue == "audit" }?["delivered"]?.scalarText == "1")
    }

    @Test("after the list was cut many times, a delivery finds its event's latest entry; an event no longer listed changes nothing")
    func outcomesAfterCuts() throws {
        let feed = ActivityFeed()
        // "dup" is routed twice (as after an adoption); its first entry is cut, its second stays listed.
        feed.record(.routed(Self.event("dup"), sinks: ["audit"]))
        for index in 0..<110 { feed.record(.routed(Self.event("e\(index)"), sinks: ["audit"])) }
        feed.record(.routed(Self.event("dup"), sinks: ["audit"]))
        for index in 110..<200 { feed.record(.routed(Self.event("e\(index)"), sinks: ["audit"])) }
        feed.record(.delivered(eventID: "dup", sink: "audit", outcome: .success, attempt: 1))
        feed.record(.delivered(eventID: "e150", sink: "audit", outcome: .retry, attempt: 1, error: "HTTP 503"))
        feed.record(.delivered(eventID: "e3", sink: "audit", outcome: .success, attempt: 1))
        let events = try #require(feed.snapshot()["events"]?.arrayValue)
        #expect(events.count == 100)
        #expect(events.first?["id"]?.stringValue == "e199" && events.last?["id"]?.stringValue == "e101")
        let withOutcomes = events.filter { $0["outcomes"]?["audit"] != nil }
        #expect(withOutcomes.map { $0["id"]?.stringValue } == ["e150", "dup"])
        #expect(withOutcomes.first?["outcomes"]?["audit"]?["error"]?.stringValue == "HTTP 503")
        #expect(withOutcomes.last?["outcomes"]?["audit"]?["outcome"]?.stringValue == "success")
    }

    @Test("the chart counts notifications, deliveries and failed attempts per minute over the last hour")
    func chart() throws {
        let clock = TestClock()
        let feed = ActivityFeed(now: clock.read)
        feed.record(.routed(Self.event("old"), sinks: ["audit"]))
        clock.advance(30 * 60)
        feed.record(.routed(Self.event("a"), sinks: ["audit"]))
        feed.record(.routed(Self.event("b"), sinks: ["audit"]))
        feed.record(.delivered(eventID: "a", sink: "audit", outcome: .success, attempt: 1))
        feed.record(.delivered(eventID: "b", sink: "audit", outcome: .retry, attempt: 1, error: "down"))
        func series(_ name: String) throws -> [Int] {
            try #require(feed.snapshot()["chart"]?[name]?.arrayValue).map { Int($0.scalarText ?? "") ?? -1 }
        }
        #expect(try series("notifications").count == 60)
        #expect(try series("notifications").last == 2 && series("notifications")[29] == 1)
        #expect(try series("deliveries").last == 1 && series("failures").last == 1)
        clock.advance(31 * 60)
        #expect(try series("notifications").reduce(0, +) == 2, "the first minute left the hour")
        clock.advance(60 * 60)
        #expect(try series("notifications").reduce(0, +) == 0)
    }

    @Test("a subscriber gets every entry live; one that falls a whole capacity behind is ended, so it reconnects and resumes")
    func subscribers() async {
        let feed = ActivityFeed(capacity: 4)
        let live = feed.subscribe().live
        feed.record(.subscription(name: "inbox", change: .created, graphID: "g", expires: nil))
        var iterator = live.makeAsyncIterator()
        let first = await iterator.next()
        #expect(first?.activity == .subscription(name: "inbox", change: .created, graphID: "g", expires: nil))
        for index in 0..<10 { feed.record(.routed(Self.event("e\(index)"), sinks: [])) }
        var received = 0
        while await iterator.next() != nil { received += 1 }
        #expect(received == 4, "the buffered entries, then the end")
        #expect(feed.subscriberCount == 0)
    }
}
