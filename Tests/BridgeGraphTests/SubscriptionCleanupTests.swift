import BridgeCore
@testable import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import TestSupport
import Testing

/// What a start leaves at Graph: subscriptions removed from the configuration are deleted (also
/// when none is left), orphans that notify this bridge are deleted, everything else is left alone.
@Suite("subscription cleanup at start", .timeLimit(.minutes(2)))
struct SubscriptionCleanupTests {
    static let bobInbox = SubscriptionManager.Declaration(
        name: "bob", resource: "users/bob@contoso.com/mailFolders('Inbox')/messages", changeTypes: ["created"], expiration: nil, includeResourceData: false)

    @Test("an orphan that notifies this bridge is deleted at start; another bridge's subscription and our own are kept")
    func orphansDeleted() async throws {
        let directory = TemporaryDirectory()
        let ours = directory.file("ours.sqlite")
        let port = try closedLoopbackPort()
        try await withSimulator { simulator in
            // Another bridge (its own URL and state) subscribes to bob's mailbox.
            try await BridgeUnderTest.run(simulator: simulator, statePath: directory.file("other.sqlite"), declarations: [Self.bobInbox]) { bridge in
                let created = try await eventually { try await bridge.store.subscriptionRecords().first?.graphID != nil }
                #expect(created)
            }
            let others = Set(simulator.subscriptions.map(\.id))

            // This bridge: its own subscription, and one Graph made whose answer never reached the
            // store (made here directly with the bridge's notification URL).
            try await BridgeUnderTest.run(simulator: simulator, statePath: ours, port: port) { bridge in
                let created = try await eventually { try await bridge.store.subscriptionRecords().first?.graphID != nil }
                #expect(created)
                let http = CurlClient()
                let expiration = Date().addingTimeInterval(3600)
                _ = try await graphClient(for: simulator, http: http).createSubscription(SubscriptionRequest(
                    resource: "users/alice@contoso.com/messages", changeTypes: ["created"], notificationURL: "http://127.0.0.1:\(port)/notifications",
                    lifecycleNotificationURL: "http://127.0.0.1:\(port)/lifecycle", expiration: expiration, clientState: "lost-answer",
                    includeResourceData: false))
                await http.shutdown()
            }
            #expect(simulator.subscriptions.count == 3)
            let orphan = try #require(simulator.subscriptions.first { $0.clientState == "lost-answer" }?.id)

            try await BridgeUnderTest.run(simulator: simulator, statePath: ours, port: port) { bridge in
                _ = try await simulator.waitForRequest { $0.method == "DELETE" && $0.path == "/v1.0/subscriptions/\(orphan)" && $0.status == 204 }
                let ready = try await eventually { bridge.manager.isReady }
                #expect(ready)
            }
            let remaining = Set(simulator.subscriptions.map(\.id))
            #expect(!remaining.contains(orphan))
            #expect(others.isSubset(of: remaining), "another bridge's subscription is left alone")
            #expect(remaining.count == 2, "ours is kept too")
        }
    }

    @Test("a subscription removed from the configuration is deleted at the next start, also when none is left")
    func lastSubscriptionRemoved() async throws {
        let directory = TemporaryDirectory()
        let state = directory.file("state.sqlite")
        try await withSimulator { simulator in
            try await BridgeUnderTest.run(simulator: simulator, statePath: state) { bridge in
                let created = try await eventually { try await bridge.store.subscriptionRecords().first?.graphID != nil }
                #expect(created)
            }
            let id = try #require(simulator.subscriptions.first?.id)
            try await BridgeUnderTest.run(simulator: simulator, statePath: state, declarations: []) { bridge in
                _ = try await simulator.waitForRequest { $0.method == "DELETE" && $0.path == "/v1.0/subscriptions/\(id)" }
                let forgotten = try await eventually { try await bridge.store.subscriptionRecords().isEmpty }
                #expect(forgotten)
            }
            #expect(simulator.subscriptions.isEmpty)
        }
    }
}

/// Upkeep of different subscriptions runs side by side.
@Suite("concurrent upkeep", .timeLimit(.minutes(5)), .machine(.exclusive))
struct ConcurrentUpkeepTests {
    @Test("a create that hangs at Graph does not hold up another subscription's create")
    func slowCreateDelaysNoOther() async throws {
        let directory = TemporaryDirectory()
        try await withSimulator { simulator in
            // The first create Graph receives answers only after 10 s.
            simulator.injectFault(.delay(.seconds(10)), on: .createSubscription, count: 1)
            let declarations = [BridgeUnderTest.inbox, SubscriptionCleanupTests.bobInbox]
            try await BridgeUnderTest.run(simulator: simulator, statePath: directory.file("state.sqlite"), declarations: declarations) { bridge in
                // One at a time, the second create would start only after the first returned (10 s).
                _ = try await simulator.waitForRequest(timeout: .seconds(6)) { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                let oneStored = try await eventually(timeout: .seconds(3)) {
                    try await bridge.store.subscriptionRecords().filter { $0.graphID != nil }.count == 1
                }
                #expect(oneStored, "one created while the other still waits")
            }
        }
    }
}
