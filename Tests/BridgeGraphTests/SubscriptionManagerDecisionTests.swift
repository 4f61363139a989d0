import BridgeCore
import BridgeSettings
import BridgeStore
import Foundation
import GraphClient
import ServiceLifecycle
import TestSupport
import Testing

@testable import BridgeGraph

/// The subscription manager with an in-memory Graph (``InMemoryGraph``): no simulator process,
/// no listener. The manager's decisions (reuse, create, renew, recreate, reauthorize, delete,
/// adopt, move the certificate) and how it meets Graph's refusals. The end-to-end paths (Graph's
/// handshake against the live listener, lifecycle notifications through the intake) stay in
/// ``SubscriptionManagerTests`` against the simulator.
@Suite("subscription manager decisions (in-memory Graph)", .timeLimit(.minutes(2)))
struct SubscriptionManagerDecisionTests {
    static let notificationURL = "https://bridge.example.test/notifications"
    static let bobInbox = SubscriptionManager.Declaration(
        name: "bob", resource: "users/bob@contoso.com/mailFolders('Inbox')/messages", changeTypes: ["created"], expiration: nil,
        includeResourceData: false)

    /// The manager on `graph` and a state file until `body` returns; "listening" at once.
    static func run(
        graph: InMemoryGraph, statePath: String, declarations: [SubscriptionManager.Declaration] = [BridgeUnderTest.inbox],
        clock: any UpkeepClock = SystemUpkeepClock(), _ body: (SQLiteStateStore, SubscriptionManager, SubscriptionDirectory) async throws -> Void
    ) async throws {
        let store = try SQLiteStateStore(path: statePath, logger: quiet)
        let directory = SubscriptionDirectory()
        let readiness = ListenerReadiness()
        let manager = SubscriptionManager(
            declarations: declarations, graph: graph, store: store, directory: directory, readiness: readiness,
            publicURL: { _ in "https://bridge.example.test" }, logger: quiet, maxRetryDelay: .seconds(900), clock: clock)
        try await manager.admitStoredSubscriptions()
        readiness.markListening(port: 443)
        let group = ServiceGroup(configuration: .init(services: [.init(service: manager)], logger: quiet))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(store, manager, directory)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// A first start: runs the manager on `graph` until the state file holds the subscription's
    /// Graph id (it was created), then stops it.
    static func createFirst(
        graph: InMemoryGraph, statePath: String, declarations: [SubscriptionManager.Declaration] = [BridgeUnderTest.inbox],
        clock: any UpkeepClock = SystemUpkeepClock()
    ) async throws {
        try await run(graph: graph, statePath: statePath, declarations: declarations, clock: clock) { store, _, _ in
            let stored = try await eventually { try await storedID(store) != nil }
            #expect(stored, "the first start stores the created subscription's id")
        }
    }

    static func storedID(_ store: SQLiteStateStore) async throws -> String? {
        try await store.subscriptionRecords().first?.graphID
    }

    static func rich(id: String, includeResourceData: Bool = true) -> SubscriptionManager.Declaration {
        SubscriptionManager.Declaration(
            name: "inbox", resource: BridgeUnderTest.inbox.resource, changeTypes: ["created"], expiration: nil,
            includeResourceData: includeResourceData, encryption: includeResourceData ? .init(certificate: "CERT-\(id)", id: id) : nil)
    }

    // MARK: Create and reuse

    @Test("the first start creates with a fresh clientState, both URLs and the resource's maximum lifetime; the record and directory get Graph's id")
    func creates() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { store, manager, subscriptions in
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            let request = try #require(created.request)
            #expect(request.notificationURL == Self.notificationURL)
            #expect(request.lifecycleNotificationURL == "https://bridge.example.test/lifecycle")
            #expect(request.clientState.count >= 32 && request.clientState.count <= 128)
            let lifetime = request.expiration.timeIntervalSinceNow
            #expect(lifetime > 4200 * 60 && lifetime <= 4230 * 60, "mail's maximum, 4230 minutes")
            #expect(try await eventually { try await Self.storedID(store) == created.id })
            #expect(subscriptions.entry(forSubscriptionID: try #require(created.id), clientState: request.clientState)?.name == "inbox")
            #expect(try await eventually { manager.isReady })
        }
    }

    @Test("a restart reuses the stored subscription after a GET: no second create")
    func reuses() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"))
        let id = try #require(graph.subscriptions.first?.subscription.id)
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { _, manager, subscriptions in
            #expect(subscriptions.entry(forSubscriptionID: id) != nil, "admitted from the store before any Graph call")
            _ = try await graph.waitForCall { $0.operation == .get && $0.id == id && $0.status == 200 }
            #expect(try await eventually { manager.isReady })
        }
        #expect(graph.calls(.create).count == 1)
        #expect(graph.subscriptions.map(\.subscription.id) == [id])
    }

    @Test("a stored subscription Graph no longer has (404 on the GET) is created again")
    func goneAtStart() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"))
        let old = try #require(graph.subscriptions.first?.subscription.id)
        graph.forget(id: old)
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { store, _, subscriptions in
            _ = try await graph.waitForCall { $0.operation == .get && $0.status == 404 }
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.id != old }
            #expect(try await eventually { try await Self.storedID(store) == created.id })
            #expect(subscriptions.entry(forSubscriptionID: old) == nil)
        }
    }

    @Test("Graph unreachable at start (503 on the GET): the stored subscription keeps receiving, nothing is recreated")
    func unreachableAtStart() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"))
        let id = try #require(graph.subscriptions.first?.subscription.id)
        graph.fail(.get, with: InMemoryGraph.error(503, .serverError, "ServiceUnavailable", "try later"))
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { _, manager, subscriptions in
            _ = try await graph.waitForCall { $0.operation == .get && $0.status == 503 }
            #expect(try await eventually { manager.isReady })
            #expect(subscriptions.entry(forSubscriptionID: id) != nil)
        }
        #expect(graph.calls(.create).count == 1)
    }

    // MARK: Renew and recreate

    @Test("a 404 on renewal recreates the subscription and swaps it in the directory")
    func recreatesAfterNotFound() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualUpkeepClock()
        let graph = InMemoryGraph(now: { clock.now })
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), clock: clock) { store, _, subscriptions in
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            let old = try #require(created.id)
            try await clock.waitForSleeps(1)
            graph.forget(id: old)
            try await clock.advance(by: .seconds(4230 * 60 / 2 + 1))
            #expect(graph.calls(.renew).map(\.status) == [404])
            let again = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.id != old }
            let new = try #require(again.id)
            #expect(try await eventually { subscriptions.entry(forSubscriptionID: new) != nil })
            #expect(subscriptions.entry(forSubscriptionID: old) == nil)
            #expect(try await eventually { try await Self.storedID(store) == new })
        }
    }

    @Test("a refused create (400) is retried with backoff until Graph takes it")
    func createRetried() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualUpkeepClock()
        let graph = InMemoryGraph(now: { clock.now })
        graph.fail(.create, with: InMemoryGraph.error(400, .badRequest, "InvalidRequest", "Subscription validation request failed."), times: 2)
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), clock: clock) { store, _, _ in
            _ = try await graph.waitForCall { $0.operation == .create && $0.status == 400 }
            try await clock.waitForSleeps(1)
            try await clock.advance(by: .milliseconds(2100))
            #expect(graph.calls(.create).map(\.status) == [400, 400], "again after 2 s")
            try await clock.advance(by: .milliseconds(4100))
            #expect(graph.calls(.create).map(\.status) == [400, 400, 201], "and after 4 s")
            let created = try #require(graph.calls(.create).last)
            #expect(try await eventually { try await Self.storedID(store) == created.id })
        }
    }

    // MARK: Lifecycle requests

    @Test(
        "reauthorizationRequired reauthorizes; a refused reauthorize renews instead; subscriptionRemoved recreates; a request for an old id is ignored"
    )
    func lifecycleRequests() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { store, manager, subscriptions in
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            let id = try #require(created.id)
            #expect(try await eventually { try await Self.storedID(store) == id })
            func lifecycle(_ event: String, id: String) async {
                await manager.lifecycleEventsJournaled([
                    BridgeEvent(
                        id: EventID.make(at: Date()), receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: id, resource: nil),
                        changeType: nil, lifecycleEvent: event, resource: nil, resourceData: nil, tenantId: nil)
                ])
            }
            await lifecycle("reauthorizationRequired", id: id)
            _ = try await graph.waitForCall { $0.operation == .reauthorize && $0.id == id && $0.status == 200 }

            graph.fail(.reauthorize, with: InMemoryGraph.error(403, .forbidden, "Forbidden", "not now"))
            await lifecycle("reauthorizationRequired", id: id)
            _ = try await graph.waitForCall { $0.operation == .renew && $0.id == id && $0.status == 200 }

            // Graph removed it, then said so.
            graph.forget(id: id)
            await lifecycle("subscriptionRemoved", id: "some-older-subscription")
            await lifecycle("subscriptionRemoved", id: id)
            let replacement = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.id != id }
            #expect(try await eventually { subscriptions.entry(forSubscriptionID: try #require(replacement.id)) != nil })
            #expect(subscriptions.entry(forSubscriptionID: id) == nil)
            #expect(graph.calls(.create).count == 2, "the request for an unknown id changed nothing")
        }
    }

    // MARK: What a start deletes or adopts

    @Test("a subscription removed from the configuration is deleted at Graph and forgotten, also when none is left")
    func deletesRemoved() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"))
        let id = try #require(graph.subscriptions.first?.subscription.id)
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: []) { store, _, subscriptions in
            #expect(subscriptions.entry(forSubscriptionID: id) == nil, "not admitted: it left the configuration")
            _ = try await graph.waitForCall { $0.operation == .delete && $0.id == id && $0.status == 200 }
            #expect(try await eventually { try await store.subscriptionRecords().isEmpty })
        }
        #expect(graph.subscriptions.isEmpty)
    }

    @Test("409 on create (Graph made it, its answer was lost): the subscription is adopted with the stored clientState, no duplicate")
    func adoptsOnConflict() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quiet)
        let declaration = BridgeUnderTest.inbox
        try await store.saveSubscription(
            SubscriptionRecord(
                name: "inbox", graphID: nil, resource: declaration.resource, changeTypes: "created", clientState: "stored-secret",
                notificationURL: Self.notificationURL, expiration: nil, renewedAt: nil, managed: true))
        let existing = graph.add(
            SubscriptionRequest(
                resource: declaration.resource, changeTypes: ["created"], notificationURL: Self.notificationURL,
                lifecycleNotificationURL: "https://bridge.example.test/lifecycle", expiration: Date().addingTimeInterval(3600),
                clientState: "stored-secret"))
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { store, _, subscriptions in
            _ = try await graph.waitForCall { $0.operation == .create && $0.status == 409 }
            _ = try await graph.waitForCall { $0.operation == .renew && $0.id == existing && $0.status == 200 }
            #expect(try await eventually { try await Self.storedID(store) == existing })
            #expect(subscriptions.entry(forSubscriptionID: existing, clientState: "stored-secret")?.name == "inbox")
        }
        #expect(graph.subscriptions.map(\.subscription.id) == [existing])
        #expect(graph.calls(.delete).isEmpty, "an awaited create's subscription is adopted, not deleted as an orphan")
    }

    @Test("an orphan that notifies this bridge is deleted at start; a subscription notifying elsewhere is left alone")
    func orphansDeleted() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        func request(_ resource: String, url: String) -> SubscriptionRequest {
            SubscriptionRequest(
                resource: resource, changeTypes: ["created"], notificationURL: url, lifecycleNotificationURL: url,
                expiration: Date().addingTimeInterval(3600), clientState: "x")
        }
        let orphan = graph.add(request("users/carol@contoso.com/messages", url: Self.notificationURL))
        let others = graph.add(request("users/dave@contoso.com/messages", url: "https://other.example.test/notifications"))
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite")) { store, _, _ in
            _ = try await graph.waitForCall { $0.operation == .delete && $0.id == orphan && $0.status == 200 }
            #expect(try await eventually { try await Self.storedID(store) != nil })
        }
        let remaining = Set(graph.subscriptions.map(\.subscription.id))
        #expect(!remaining.contains(orphan))
        #expect(remaining.contains(others))
        #expect(remaining.count == 2, "ours and the other bridge's")
    }

    // MARK: Concurrency

    @Test("a create that hangs at Graph does not hold up another subscription's create")
    func slowCreateDelaysNoOther() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        graph.hold(.create, resource: BridgeUnderTest.inbox.resource)
        try await Self.run(
            graph: graph, statePath: directory.file("state.sqlite"), declarations: [BridgeUnderTest.inbox, Self.bobInbox]
        ) { store, _, _ in
            let bob = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            #expect(bob.request?.resource == Self.bobInbox.resource)
            #expect(try await eventually { try await store.subscriptionRecords().filter { $0.graphID != nil }.count == 1 })
            graph.release(.create)
            _ = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.request?.resource == BridgeUnderTest.inbox.resource }
        }
    }

    // MARK: Rich notifications: the certificate

    @Test("a new encryption id at start moves the subscription by one PATCH (certificate, id, expiry): no delete, no create")
    func certificateMoved() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-1")])
        let id = try #require(graph.subscriptions.first?.subscription.id)
        #expect(graph.subscriptions.first?.encryptionCertificate == "CERT-enc-1")
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-2")]) {
            _, manager, subscriptions in
            let moved = try await graph.waitForCall { $0.operation == .updateCertificate && $0.status == 200 }
            #expect(moved.id == id && moved.certificateID == "enc-2")
            #expect(subscriptions.entry(forSubscriptionID: id) != nil, "kept receiving throughout")
            #expect(try await eventually { manager.isReady })
        }
        let stored = try #require(graph.subscriptions.first)
        #expect(graph.subscriptions.count == 1 && stored.subscription.id == id)
        #expect(stored.encryptionCertificate == "CERT-enc-2" && stored.subscription.encryptionCertificateId == "enc-2")
        #expect(graph.calls(.create).count == 1 && graph.calls(.delete).isEmpty)

        // The same id again: reused, nothing to move.
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-2")]) { _, manager, _ in
            let done = try await eventually { manager.isReady }
            #expect(done)
        }
        #expect(graph.calls(.updateCertificate).count == 1)
    }

    @Test("a failed certificate PATCH is retried (503); a 404 on it creates the subscription again with the new certificate")
    func certificateMoveFailures() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualUpkeepClock()
        let graph = InMemoryGraph(now: { clock.now })
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-1")], clock: clock)
        graph.fail(.updateCertificate, with: InMemoryGraph.error(503, .serverError, "ServiceUnavailable", "try later"))
        let sleeps = clock.sleeps
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-2")], clock: clock) { _, _, _ in
            _ = try await graph.waitForCall { $0.operation == .updateCertificate && $0.status == 503 }
            try await clock.waitForSleeps(sleeps + 1)
            try await clock.advance(by: .milliseconds(2100))
            #expect(graph.calls(.updateCertificate).map(\.status) == [503, 200], "retried after the backoff")
        }
        #expect(graph.calls(.create).count == 1)

        // Graph drops the subscription between the start's GET and the PATCH.
        let id = try #require(graph.subscriptions.first?.subscription.id)
        graph.hold(.updateCertificate)
        let before = graph.calls.count
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-3")], clock: clock) { _, _, _ in
            _ = try await graph.waitForCall { $0.operation == .get && $0.id == id && $0.status == 200 && $0.index >= before }
            graph.forget(id: id)
            graph.release(.updateCertificate)
            _ = try await graph.waitForCall { $0.operation == .updateCertificate && $0.status == 404 }
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.id != id }
            #expect(created.request?.encryptionCertificateID == "enc-3" && created.request?.encryptionCertificate == "CERT-enc-3")
        }
    }

    @Test("includeResourceData switched off: the subscription is replaced (delete, create), not PATCHed")
    func resourceDataChanged() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        try await Self.createFirst(graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-1")])
        let id = try #require(graph.subscriptions.first?.subscription.id)
        try await Self.run(
            graph: graph, statePath: directory.file("state.sqlite"), declarations: [Self.rich(id: "enc-1", includeResourceData: false)]
        ) { _, _, _ in
            _ = try await graph.waitForCall { $0.operation == .delete && $0.id == id && $0.status == 200 }
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 && $0.id != id }
            #expect(created.request?.includeResourceData == false)
        }
        #expect(graph.calls(.updateCertificate).isEmpty)
        #expect(graph.subscriptions.count == 1)
    }

    // MARK: resync: delta

    @Test("resync: delta: the create takes a baseline (every page); after missed, a 410 from Graph takes a new baseline instead")
    func deltaBaselineAnd410() async throws {
        let directory = TemporaryDirectory()
        let graph = InMemoryGraph()
        var declaration = BridgeUnderTest.inbox
        declaration.resync = true
        let start = DeltaResource.deltaPath(for: declaration.resource)
        graph.setDeltaPage(start, body: #"{"value": [{"id": "m1"}], "@odata.nextLink": "page-2"}"#)
        graph.setDeltaPage("page-2", body: #"{"value": [{"id": "m2"}], "@odata.deltaLink": "link-1"}"#)
        try await Self.run(graph: graph, statePath: directory.file("state.sqlite"), declarations: [declaration]) { store, manager, _ in
            let created = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            try await graph.waitForCalls(2) { $0.operation == .delta && $0.status == 200 }
            let baseline = try await eventually { try await store.setting("resync.deltaLink.inbox")?.contains("link-1") == true }
            #expect(baseline, "the baseline's deltaLink is stored")
            #expect(try await store.unroutedEvents(limit: 10).isEmpty, "a baseline emits nothing")

            // Graph forgot the delta state: link-1 answers 410.
            await manager.lifecycleEventsJournaled([
                BridgeEvent(
                    id: EventID.make(at: Date()), receivedAt: Date(),
                    subscription: SubscriptionReference(name: "inbox", id: try #require(created.id), resource: nil),
                    changeType: nil, lifecycleEvent: "missed", resource: nil, resourceData: nil, tenantId: nil)
            ])
            _ = try await graph.waitForCall { $0.operation == .delta && $0.status == 410 }
            try await graph.waitForCalls(4) { $0.operation == .delta && $0.status == 200 }
            #expect(graph.calls(.delta).map(\.status) == [200, 200, 410, 200, 200], "a new baseline from the start, all pages")
        }
    }

}
