import BridgeCore
import Foundation
import Testing

@Suite("Router")
struct RouterTests {
    static let mail = BridgeEvent(
        id: "e1",
        receivedAt: Date(timeIntervalSince1970: 1_800_000_000),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("2")]),
        tenantId: "t1",
        data: .object([
            "subject": .string("Invoice 42"),
            "importance": .string("high"),
            "isRead": .bool(false),
            "from": .object(["emailAddress": .object(["address": .string("bob@contoso.com")])]),
            "toRecipients": .array([
                .object(["emailAddress": .object(["address": .string("alice@contoso.com")])]),
                .object(["emailAddress": .object(["address": .string("ops@contoso.com")])]),
            ]),
        ])
    )

    static let missed = BridgeEvent(
        id: "e2",
        receivedAt: Date(timeIntervalSince1970: 1_800_000_000),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: nil),
        lifecycleEvent: "missed"
    )

    func matches(_ conditions: [(String, MatchValue)], _ event: BridgeEvent = mail) -> Bool {
        Matcher(conditions.map { Matcher.Condition(path: EventPath($0.0), value: $0.1) }).matches(event.json)
    }

    @Test("exact strings; `subscription` alone means subscription.name")
    func exact() {
        #expect(matches([("subscription", .string("inbox"))]))
        #expect(matches([("subscription.id", .string("sub-1"))]))
        #expect(!matches([("subscription", .string("Inbox"))]))
        #expect(matches([("changeType", .string("created")), ("data.importance", .string("high"))]))
        #expect(!matches([("changeType", .string("created")), ("data.importance", .string("low"))]))
    }

    @Test("a `*` makes a glob")
    func glob() {
        #expect(matches([("resource", .string("Users/*/Messages/*"))]))
        #expect(matches([("data.subject", .string("*42"))]))
        #expect(matches([("data.subject", .string("Inv*ce*"))]))
        #expect(!matches([("data.subject", .string("*43"))]))
        #expect(!matches([("resource", .string("Groups/*"))]))
    }

    @Test("a list matches any of its values")
    func list() {
        #expect(matches([("changeType", .anyOf([.string("updated"), .string("created")]))]))
        #expect(!matches([("changeType", .anyOf([.string("updated"), .string("deleted")]))]))
    }

    @Test("regex must match the whole string")
    func regex() throws {
        #expect(matches([("data.subject", .regex(try RegexPattern("Invoice \\d+")))]))
        #expect(!matches([("data.subject", .regex(try RegexPattern("Invoice")))]))
    }

    @Test("not negates, and a missing field is not a match")
    func not() {
        #expect(matches([("changeType", .not(.string("deleted")))]))
        #expect(!matches([("changeType", .not(.string("created")))]))
        #expect(matches([("lifecycleEvent", .not(.string("missed")))]))
        #expect(!matches([("lifecycleEvent", .string("*"))]))
        #expect(matches([("lifecycleEvent", .string("missed"))], Self.missed))
    }

    @Test("dotted keys, booleans, and arrays (any element)")
    func paths() {
        #expect(matches([("resourceData.@odata.type", .string("#Microsoft.Graph.Message"))]))
        #expect(matches([("data.isRead", .string("false"))]))
        #expect(matches([("data.toRecipients.emailAddress.address", .string("ops@*"))]))
        #expect(matches([("data.toRecipients.1.emailAddress.address", .string("ops@contoso.com"))]))
        #expect(!matches([("data.toRecipients.0.emailAddress.address", .string("ops@contoso.com"))]))
        #expect(!matches([("data.nothing.here", .string("x"))]))
    }

    @Test("first match wins; continue goes on; no match at all routes nowhere")
    func order() {
        let router = Router(routes: [
            Route(matcher: Matcher([.init(path: EventPath("changeType"), value: .string("created"))]), sinks: ["chat", "audit"], continue: true),
            Route(matcher: Matcher([.init(path: EventPath("data.importance"), value: .string("high"))]), sinks: ["pager"]),
            Route(matcher: nil, sinks: ["audit"]),
        ])
        let decision = router.route(Self.mail)
        #expect(decision.sinks == ["chat", "audit", "pager"])
        #expect(decision.matchedRoutes == [0, 1])

        let lifecycle = router.route(Self.missed)
        #expect(lifecycle.sinks == ["audit"])
        #expect(lifecycle.matchedRoutes == [2])

        let strict = Router(routes: [Route(matcher: Matcher([.init(path: EventPath("changeType"), value: .string("deleted"))]), sinks: ["x"])])
        #expect(strict.route(Self.mail).sinks.isEmpty)
        #expect(strict.route(Self.mail).matchedRoutes.isEmpty)
    }

    @Test("a catch-all route takes everything")
    func catchAll() {
        let router = Router(routes: [Route(matcher: nil, sinks: ["audit"])])
        #expect(router.route(Self.mail).sinks == ["audit"])
        #expect(router.route(Self.missed).sinks == ["audit"])
    }
}
