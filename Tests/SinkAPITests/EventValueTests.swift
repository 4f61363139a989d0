import Foundation
import SinkAPI
import Testing

/// `BridgeEvent` keeps its members behind one shared reference (copy on write): it must still
/// behave as a value.
@Suite("BridgeEvent as a value")
struct EventValueTests {
    static func event() -> BridgeEvent {
        BridgeEvent(
            id: "e1", receivedAt: Date(timeIntervalSince1970: 1_800_000_000.123),
            subscription: SubscriptionReference(name: "inbox", id: "s1", resource: "me/messages"), changeType: "created",
            resource: "Users/1/Messages/1", resourceData: .object(["id": "m1"]), tenantId: "t1")
    }

    @Test("changing a copy, member by member, leaves the original as it was")
    func copiesAreIndependent() {
        let original = Self.event()
        var copy = original
        copy.id = "e2"
        copy.receivedAt = Date(timeIntervalSince1970: 1_900_000_000)
        copy.subscription.name = "calendar"
        copy.changeType = "updated"
        copy.lifecycleEvent = "missed"
        copy.resync = true
        copy.resource = "other"
        copy.resourceData = nil
        copy.tenantId = "t2"
        copy.data = .object(["subject": "s"])
        #expect(original.id == "e1" && original.receivedAtMilliseconds == 1_800_000_000_123 && original.subscription.name == "inbox")
        #expect(original.changeType == "created" && original.lifecycleEvent == nil && original.resync == nil && original.resource == "Users/1/Messages/1")
        #expect(original.resourceData == .object(["id": "m1"]) && original.tenantId == "t1" && original.data == nil)
        #expect(copy.id == "e2" && copy.receivedAtMilliseconds == 1_900_000_000_000 && copy.subscription.name == "calendar")
        #expect(copy.changeType == "updated" && copy.lifecycleEvent == "missed" && copy.resync == true && copy.resource == "other")
        #expect(copy.resourceData == nil && copy.tenantId == "t2" && copy.data == .object(["subject": "s"]))
        #expect(original == Self.event(), "the original still equals a fresh one")
    }

    @Test("equality and hashing are by members: two events built alike are equal and hash alike; one member apart, they differ")
    func equalityByMembers() {
        let a = Self.event()
        let b = Self.event()
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        var c = b
        c.tenantId = "t9"
        #expect(a != c)
        #expect(Set([a, c]).count == 2)
        #expect(String(describing: a).contains("inbox"), "a failure message shows the members")
    }
}
