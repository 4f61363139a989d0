import BridgeCore
import BridgeStore
import Foundation
import Testing

/// `NotificationIntake.check` is the intake's own decision: what it says of each item is what the
/// intake does with it (and what `routes test` prints).
@Suite("intake check")
struct IntakeCheckTests {
    @Test("per item, check's verdict is the intake's outcome: accepted, unknown subscription, wrong clientState")
    func checkIsTheIntakesDecision() async throws {
        let fixture = try IntakeTests.Fixture()
        let directory = SubscriptionDirectory([
            SubscriptionEntry(name: "audit-feed", id: IntakeTests.subscriptionID, resource: "users/alice/messages", clientState: "secretClientValue")
        ])
        let items = [
            IntakeTests.item(etag: "W/\"1\""),
            IntakeTests.item(clientState: "forged", etag: "W/\"2\""),
            IntakeTests.item(id: "99999999-1111-4222-8333-444444444444", etag: "W/\"3\""),
            IntakeTests.item(id: IntakeTests.subscriptionID.uppercased(), etag: "W/\"4\""),
            IntakeTests.item(clientState: "", etag: "W/\"5\""),
        ]
        var expected: [String] = []
        for item in items {
            let collection = try ChangeNotificationCollection(body: IntakeTests.body([item]))
            let notification = try #require(collection.items.first ?? nil)
            let outcome = await fixture.intake.receive(body: IntakeTests.body([item]), endpoint: .notifications)
            switch NotificationIntake.check(notification, in: directory) {
            case .accepted(let entry):
                #expect(entry.name == "audit-feed")
                #expect(outcome.accepted == 1, "check accepted \(item)")
                expected.append("accepted")
            case .unknownSubscription:
                #expect(outcome.unknownSubscription == 1, "check said unknown for \(item)")
                expected.append("unknown")
            case .wrongClientState(let entry):
                #expect(entry.name == "audit-feed")
                #expect(outcome.wrongClientState == 1, "check said wrong clientState for \(item)")
                expected.append("wrong")
            }
        }
        #expect(expected == ["accepted", "wrong", "unknown", "accepted", "wrong"])
    }
}
