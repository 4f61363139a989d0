import Foundation
import SinkAPI
import Testing

@Suite("Event encoding")
struct EventEncodingTests {
    /// Every combination of the optional members, with text that needs escapes.
    static var events: [BridgeEvent] {
        var events: [BridgeEvent] = []
        for mask in 0..<(1 << 8) {
            func on(_ bit: Int) -> Bool { mask & (1 << bit) != 0 }
            events.append(
                BridgeEvent(
                    id: "018bcfe5-6800-7e86-b384-953723a72223",
                    receivedAt: Date(timeIntervalSince1970: 1_700_000_000.123),
                    subscription: SubscriptionReference(name: "in\"box", id: "sub-1", resource: on(0) ? "Users/1/Messages" : nil),
                    changeType: on(1) ? "created" : nil,
                    lifecycleEvent: on(2) ? "missed" : nil,
                    resync: on(3),
                    resource: on(4) ? "Users/ü/Messages('a\\b')" : nil,
                    resourceData: on(5) ? .object(["@odata.type": .string("#Microsoft.Graph.Message"), "n": .number("1.50")]) : nil,
                    tenantId: on(6) ? "tenant\n1" : nil,
                    data: on(7) ? .array([.null, .bool(false), .string("😀")]) : nil
                ))
        }
        return events
    }

    @Test("the bytes written directly are the event's JSON value serialized, for every combination of optional members")
    func encodedIsJSONSerialized() throws {
        for event in Self.events {
            #expect(event.encoded() == event.json.serialized())
            #expect(try BridgeEvent(json: JSONParser.parse(event.encoded())) == event)
        }
    }
}
