import Foundation
import Synchronization
import Testing

@testable import SinkAPI

/// A sink that says nothing about batches gets them one event at a time (``Sink/deliver(batch:)``'s default).
@Suite("sink API: batches by default")
struct BatchDefaultTests {
    /// Fails the event whose subscription name is "bad"; records the ids it was handed.
    final class OneAtATime: Sink {
        static let typeName = "one-at-a-time"
        struct Configuration: Decodable, Sendable {}
        let seen = Mutex<[String]>([])

        init(name: String, configuration: Configuration, context: SinkContext) throws {}
        init() {}

        func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
            seen.withLock { $0.append(event.id) }
            if event.subscription.name == "bad" { throw SinkError.permanent("refused \(event.id)") }
        }
    }

    func event(_ id: String, subscription: String = "inbox") -> SinkDelivery {
        SinkDelivery(
            event: BridgeEvent(id: id, receivedAt: Date(timeIntervalSince1970: 0), subscription: SubscriptionReference(name: subscription, id: "s", resource: nil)),
            attempt: DeliveryAttempt(number: 1, deliveryID: 1))
    }

    @Test("the default batch limit is 1, and a batch is delivered event by event in order")
    func inOrder() async throws {
        let sink = OneAtATime()
        #expect(sink.batchLimit == 1)
        try await sink.deliver(batch: [event("a"), event("b"), event("c")])
        #expect(sink.seen.withLock { $0 } == ["a", "b", "c"])
    }

    @Test("the first failure ends the batch and says how many before it were delivered")
    func stopsAtFailure() async throws {
        let sink = OneAtATime()
        await #expect {
            try await sink.deliver(batch: [event("a"), event("b"), event("c", subscription: "bad"), event("d")])
        } throws: { error in
            guard let error = error as? SinkBatchError, let cause = error.error as? SinkError else { return false }
            return error.delivered == 2 && cause.disposition == .permanent && cause.message == "refused c"
        }
        #expect(sink.seen.withLock { $0 } == ["a", "b", "c"], "nothing after the failure was tried")
    }
}
