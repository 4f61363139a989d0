import BridgeCore
@testable import BridgeGraph
import BridgeStore
import GraphClient
import Foundation
import GraphSimulator
import TestSupport
import Testing

/// The subscription manager against the Graph simulator, with the real listener answering
/// Graph's validation handshakes and notifications: the end-to-end paths. The manager's decisions
/// (reuse, recreate, delete, adopt, retry, concurrency) are tested against an in-memory Graph in
/// ``SubscriptionManagerDecisionTests``.
@Suite("subscription manager", .timeLimit(.minutes(3)))
struct SubscriptionManagerTests {
    static func posts(_ simulator: GraphSimulator) -> [RecordedRequest] {
        simulator.requests.filter { $0.method == "POST" && $0.path == "/v1.0/subscriptions" }
    }

    @Test("creates the subscription after the listener is up, with the handshake, a fresh clientState and the lifecycle URL")
    func creates() async throws {
        let directory = TemporaryDirectory()
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(simulator: simulator, statePath: directory.file("state.sqlite")) { bridge in
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                let created = try #require(simulator.subscriptions.first)
                #expect(simulator.subscriptions.count == 1)
                #expect(created.notificationURL.hasSuffix("/notifications"))
                #expect(created.lifecycleNotificationURL?.hasSuffix("/lifecycle") == true)
                #expect(created.changeType == "created")
                let clientState = try #require(created.clientState)
                #expect(clientState.count >= 32 && clientState.count <= 128)
                // Graph validated both URLs against the live listener.
                let handshakes = simulator.deliveries.filter { $0.kind == .validation }
                #expect(handshakes.contains { $0.url.contains("/notifications?") } && handshakes.contains { $0.url.contains("/lifecycle?") })
                #expect(try await eventually { try await bridge.store.subscriptionRecords().first?.graphID == created.id })
                #expect(bridge.subscriptions.entry(forSubscriptionID: created.id)?.clientState == clientState)
                // Lifetime: Graph's maximum for mail (4230 minutes), not more.
                let lifetime = created.expirationDateTime.timeIntervalSince(created.createdAt)
                #expect(lifetime > 4200 * 60 && lifetime <= 4230 * 60)
            }
        }
    }

    @Test("renews (PATCH) before expiry, again and again")
    func renews() async throws {
        let directory = TemporaryDirectory()
        try await withSimulator({ $0.maxSubscriptionLifetime = .seconds(3) }) { simulator in
            try await BridgeUnderTest.run(simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [BridgeUnderTest.inbox(lifetime: .seconds(3))]) { _ in
                let created = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                let first = try await simulator.waitForRequest(timeout: .seconds(20)) { $0.method == "PATCH" && $0.status == 200 }
                #expect(first.date.timeIntervalSince(created.date) < 3, "renewed before the 3 s lifetime ran out")
                _ = try await simulator.waitForRequest(timeout: .seconds(20)) { request in
                    request.method == "PATCH" && request.status == 200 && request.date > first.date.addingTimeInterval(0.5)
                }
                #expect(simulator.subscriptions.count == 1)
            }
            #expect(Self.posts(simulator).count == 1)
        }
    }

    @Test("lifecycle: reauthorizationRequired reauthorizes, subscriptionRemoved recreates, missed is journaled as an event")
    func lifecycle() async throws {
        let directory = TemporaryDirectory()
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(simulator: simulator, statePath: directory.file("state.sqlite")) { bridge in
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                let id = try #require(simulator.subscriptions.first?.id)
                #expect(try await eventually { bridge.subscriptions.entry(forSubscriptionID: id) != nil })

                _ = try simulator.sendLifecycleEvent(.reauthorizationRequired, subscriptionID: id)
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions/\(id)/reauthorize" && $0.status == 204 }

                _ = try simulator.sendLifecycleEvent(.missed, subscriptionID: id)
                #expect(try await eventually { try await bridge.store.unroutedEvents(limit: 10).contains { $0.event.lifecycleEvent == "missed" } })

                _ = try simulator.sendLifecycleEvent(.subscriptionRemoved, subscriptionID: id)
                #expect(try await eventually { Self.posts(simulator).filter { $0.status == 201 }.count == 2 })
                let replacement = try #require(simulator.subscriptions.first?.id)
                #expect(replacement != id)
                #expect(try await eventually { bridge.subscriptions.entry(forSubscriptionID: replacement) != nil })
                let lifecycle = try await bridge.store.unroutedEvents(limit: 10).compactMap(\.event.lifecycleEvent)
                #expect(lifecycle == ["reauthorizationRequired", "missed", "subscriptionRemoved"])
            }
        }
    }

}

@Suite("subscription manager messages")
struct SubscriptionManagerMessageTests {
    @Test("a 403 names the missing permission or the quota; a failed handshake points at publicUrl")
    func explanations() {
        let declaration = BridgeUnderTest.inbox
        let forbidden = GraphError(kind: .forbidden, status: 403, code: "ExtensionError", message: "Number of subscriptions on item has exceeded limit", requestID: "r-1")
        let text = SubscriptionManager.explain(forbidden, declaration: declaration)
        #expect(text.contains("permission") && text.contains("quota") && text.contains("Mail.Read"))
        #expect(text.contains("exceeded limit") && text.contains("r-1"), "Graph's own message and request-id are kept")
        let handshake = GraphError(kind: .badRequest, status: 400, code: "InvalidRequest", message: "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.", requestID: nil)
        #expect(SubscriptionManager.explain(handshake, declaration: declaration).contains("server.publicUrl"))
    }
}
