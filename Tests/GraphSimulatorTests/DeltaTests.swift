import CurlKit
import Foundation
import Testing

@testable import GraphSimulator

/// Delta queries on messages, as a client sees them over HTTP.
@Suite("delta queries")
struct DeltaTests {
    static let inboxDelta = "/users/alice@contoso.com/mailFolders('Inbox')/messages/delta"

    /// Follows `start` to its deltaLink; returns every item and the links it took.
    static func follow(_ live: Live, token: String, from start: String, pageSize: Int? = nil) async throws -> (items: [JSONValue], links: [String]) {
        var items: [JSONValue] = []
        var links: [String] = []
        var next = start
        let headers: [(name: String, value: String)] = pageSize.map { [("Prefer", "odata.maxpagesize=\($0)")] } ?? []
        while true {
            let response = try await live.call("GET", next, token: token, headers: headers)
            try #require(response.status == 200, "\(response.bodyText)")
            items += response.json?["value"]?.arrayValue ?? []
            if let nextLink = response.json?["@odata.nextLink"]?.stringValue {
                #expect(nextLink.contains("$skiptoken=") && response.json?["@odata.deltaLink"] == nil)
                links.append(nextLink)
                next = nextLink
            } else {
                let deltaLink = try #require(response.json?["@odata.deltaLink"]?.stringValue)
                #expect(deltaLink.contains("$deltatoken="))
                links.append(deltaLink)
                return (items, links)
            }
        }
    }

    @Test("no token: every message of the folder, paged by nextLink ($skiptoken), then a deltaLink ($deltatoken)")
    func baselinePages() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            var ids: Set<String> = []
            for index in 0..<5 { ids.insert(try live.simulator.createMessage(MessageContent(subject: "m\(index)"), in: "alice@contoso.com").message.id) }
            try live.simulator.createMessage(MessageContent(subject: "archived"), in: "alice@contoso.com", folder: "archive")
            try live.simulator.createMessage(MessageContent(subject: "bob's"), in: "bob@contoso.com")
            let (items, links) = try await Self.follow(live, token: token, from: Self.inboxDelta, pageSize: 2)
            #expect(links.count == 3)
            #expect(Set(items.compactMap { $0["id"]?.stringValue }) == ids)
            #expect(items.allSatisfy { $0["@odata.etag"]?.stringValue?.hasPrefix("W/") == true && $0["subject"] != nil })
            // The default page size is the simulator's (10 unless changed).
            live.simulator.deltaPageSize = 4
            #expect(try await Self.follow(live, token: token, from: Self.inboxDelta).links.count == 2)
        }
    }

    @Test("a deltaLink returns what changed since, once each in its current state, and @removed for deleted messages")
    func changesSinceLink() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let kept = try live.simulator.createMessage(MessageContent(subject: "kept"), in: "alice@contoso.com").message
            let changed = try live.simulator.createMessage(MessageContent(subject: "changed"), in: "alice@contoso.com").message
            let deleted = try live.simulator.createMessage(MessageContent(subject: "deleted"), in: "alice@contoso.com").message
            let baseline = try await Self.follow(live, token: token, from: Self.inboxDelta)
            let link = try #require(baseline.links.last)

            let added = try live.simulator.createMessage(MessageContent(subject: "added"), in: "alice@contoso.com").message
            try live.simulator.updateMessage(id: changed.id) { $0.subject = "first" }
            try live.simulator.updateMessage(id: changed.id) { $0.subject = "second" }
            try live.simulator.deleteMessage(id: deleted.id)
            try live.simulator.createMessage(MessageContent(subject: "elsewhere"), in: "alice@contoso.com", folder: "archive")

            let (items, links) = try await Self.follow(live, token: token, from: link)
            #expect(items.count == 3)
            let byID = Dictionary(items.map { ($0["id"]?.stringValue ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            #expect(byID[added.id]?["subject"]?.stringValue == "added")
            #expect(byID[changed.id]?["subject"]?.stringValue == "second")
            #expect(byID[deleted.id]?["@removed"]?["reason"]?.stringValue == "deleted")
            #expect(byID[kept.id] == nil)
            // Nothing since: an empty page and a new deltaLink.
            let quiet = try await Self.follow(live, token: token, from: try #require(links.last))
            #expect(quiet.items.isEmpty)
        }
    }

    @Test("an expired or unknown token is answered 410 SyncStateNotFound")
    func expiredToken() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            try live.simulator.createMessage(MessageContent(subject: "m"), in: "alice@contoso.com")
            let link = try #require(try await Self.follow(live, token: token, from: Self.inboxDelta).links.last)
            #expect(try await live.call("GET", link, token: token).status == 200)
            live.simulator.expireDeltaTokens()
            let gone = try await live.call("GET", link, token: token)
            #expect(gone.status == 410)
            #expect(gone.graphErrorCode == "SyncStateNotFound")
            let unknown = try await live.call("GET", Self.inboxDelta + "?$deltatoken=nonsense", token: token)
            #expect(unknown.status == 410 && unknown.graphErrorCode == "SyncStateNotFound")
            // A new baseline works again.
            #expect(try await live.call("GET", Self.inboxDelta, token: token).status == 200)
        }
    }

    @Test("while notifications are dropped, changes notify nobody but the delta sees them")
    func droppedNotifications() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            _ = try await live.createSubscription(token: token, live.subscriptionBody())
            let link = try #require(try await Self.follow(live, token: token, from: Self.inboxDelta).links.last)
            live.simulator.dropsNotifications = true
            let missed = try live.simulator.createMessage(MessageContent(subject: "missed"), in: "alice@contoso.com")
            #expect(missed.notifiedSubscriptionIDs.isEmpty)
            live.simulator.dropsNotifications = false
            let seen = try live.simulator.createMessage(MessageContent(subject: "seen"), in: "alice@contoso.com")
            #expect(seen.notifiedSubscriptionIDs.count == 1)
            let delivery = try await live.subscriber.notifications.first { $0.path == "/notify" }
            #expect(delivery.items.map { $0["resourceData"]?["id"]?.stringValue } == [seen.message.id])
            let items = try await Self.follow(live, token: token, from: link).items
            #expect(Set(items.compactMap { $0["id"]?.stringValue }) == [missed.message.id, seen.message.id])
        }
    }
}
