import BridgeCore
@testable import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphSimulator
import TestSupport
import Testing

/// After a restart the directory holds the stored subscriptions before the listener opens, so
/// Graph's first notifications are routed while the reconcile with a slow Graph is still running.
@Suite("restart window", .timeLimit(.minutes(2)))
struct RestartWindowTests {
    @Test("a notification for the stored subscription is routed while token and GET still wait on Graph")
    func routedWhileGraphIsSlow() async throws {
        let directory = TemporaryDirectory()
        let state = directory.file("state.sqlite")
        let port = try reservedLoopbackPort()  // the same public URL across restarts, as in production
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, port: port) { bridge in
                let stored = try await eventually { try await bridge.store.subscriptionRecords().first?.graphID != nil }
                #expect(stored)
            }
            let id = try #require(simulator.subscriptions.first?.id)

            // Graph is slow after the outage: the token and the subscription's GET take 5 s each.
            simulator.injectFault(.delay(.seconds(5)), on: .token)
            simulator.injectFault(.delay(.seconds(5)), on: .getSubscription)
            let collector = EventCollector()
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: state, port: port, engine: { collector.engine(store: $0, enricher: NoEnrichment()) }
            ) { bridge in
                #expect(bridge.subscriptions.entry(forSubscriptionID: id) != nil, "known before the listener opens")
                _ = try await bridge.readiness.port()
                _ = try simulator.createMessage(MessageContent(subject: "Sent during the restart"), in: "alice@contoso.com")
                let routed = await collector.wait(for: 1, timeout: .seconds(4))
                #expect(routed.map(\.subscription.id) == [id])
                #expect(!bridge.manager.isReady, "the reconcile with Graph was still waiting when the event was routed")
            }
        }
    }

    @Test("a stored subscription whose create got no answer is expected: its clientState admits the first notification")
    func unansweredCreateIsExpected() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quiet)
        try await store.saveSubscription(SubscriptionRecord(
            name: "inbox", graphID: nil, resource: BridgeUnderTest.inbox.resource, changeTypes: "created", clientState: "stored-secret",
            notificationURL: "http://127.0.0.1:1/notifications", expiration: nil, renewedAt: nil, managed: true))
        try await store.saveSubscription(SubscriptionRecord(
            name: "gone", graphID: "gone-id", resource: "users/bob@contoso.com/messages", changeTypes: "created", clientState: "other",
            notificationURL: "http://127.0.0.1:1/notifications", expiration: nil, renewedAt: nil, managed: true))
        // No Graph call happens before the listener opens: an in-memory Graph records none.
        let graph = InMemoryGraph()
        let subscriptions = SubscriptionDirectory()
        let manager = SubscriptionManager(
            declarations: [BridgeUnderTest.inbox], graph: graph, store: store, directory: subscriptions,
            readiness: ListenerReadiness(), publicURL: { "http://127.0.0.1:\($0)" }, logger: quiet)
        try await manager.admitStoredSubscriptions()
        #expect(subscriptions.entry(forSubscriptionID: "new-id", clientState: "stored-secret")?.name == "inbox")
        #expect(subscriptions.entry(forSubscriptionID: "new-id", clientState: "wrong") == nil)
        #expect(subscriptions.entry(forSubscriptionID: "gone-id") == nil, "a subscription no longer declared is not admitted")
        #expect(graph.calls.isEmpty)
    }
}
