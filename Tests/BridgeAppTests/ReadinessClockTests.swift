import BridgeCore
import BridgeStore
import Foundation
import Logging
import TestSupport
import Testing

@testable import BridgeApp

/// `/readyz`'s dates on a clock the test moves: what the write probe stamps into the store, and
/// the moment a managed subscription counts as expired.
@Suite("readiness on an injected wall clock")
struct ReadinessClockTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("the write probe stamps the clock's date into the store at each readiness check")
    func writeProbe() async throws {
        let folder = TemporaryDirectory(prefix: "readiness-clock")
        let store = try SQLiteStateStore(path: folder.file("state.sqlite"), logger: Self.quiet)
        let clock = ManualTestClock(start: Self.start)
        let intake = NotificationIntake(directory: SubscriptionDirectory([]), store: store, doorbell: Doorbell(), logger: Self.quiet)
        let health = StoreHealth(store: store, intake: intake, current: CurrentGeneration(), now: { clock.date })

        #expect(await health.readinessProblems().isEmpty)
        #expect(try await store.setting("readyz.lastWriteProbe") == Timestamp.format(Self.start))
        clock.advance(by: .seconds(90))
        #expect(await health.readinessProblems().isEmpty)
        #expect(try await store.setting("readyz.lastWriteProbe") == Timestamp.format(Self.start.addingTimeInterval(90)))
    }

    @Test("a managed subscription is ready until its expiration and not ready from that moment; one without a Graph id is never ready")
    func expiry() {
        let clock = ManualTestClock(start: Self.start)
        let expiration = Self.start.addingTimeInterval(3 * 86_400)
        func record(_ name: String, id: String?) -> SubscriptionRecord {
            SubscriptionRecord(
                name: name, graphID: id, resource: "users/a/messages", changeTypes: "created", clientState: "secret",
                notificationURL: "https://bridge.example/notifications", expiration: expiration, renewedAt: nil, managed: true)
        }
        let records = [record("inbox", id: "A"), record("pending", id: nil)]
        func problems() -> [String] {
            StoreHealth.subscriptionProblems(managedNames: ["inbox", "pending", "undeclared"], records: records, at: clock.date)
        }

        #expect(problems() == ["pending: no subscription at Graph yet", "undeclared: no subscription at Graph yet"])
        clock.advance(by: .seconds(3 * 86_400) - .milliseconds(1))
        #expect(problems() == ["pending: no subscription at Graph yet", "undeclared: no subscription at Graph yet"], "1 ms before the expiration")
        clock.advance(by: .milliseconds(1))
        #expect(
            problems() == [
                "inbox: expired at \(Timestamp.format(expiration))", "pending: no subscription at Graph yet",
                "undeclared: no subscription at Graph yet",
            ])
    }
}
