import BridgeCore
import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import MetricsTestKit
import Testing
import TestSupport

/// `fetch:` within Graph's limits, against the simulator: Outlook's 4 concurrent requests per
/// mailbox, JSON `$batch`, and `Retry-After` on whole and inner answers.
@Suite("Enrichment within Graph's limits", .timeLimit(.minutes(2)))
struct EnrichmentLimitTests {
    static let carol = SimulatedUser(id: "3c1d2e4f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", userPrincipalName: "carol@contoso.com", displayName: "Carol Example")

    /// A notification of `user`'s subscription on their messages about `message`.
    static func pending(_ message: SimulatedMessage, of user: SimulatedUser, sequence: Int64 = 1) -> PendingEvent {
        PendingEvent(
            sequence: sequence,
            event: BridgeEvent(
                id: EventID.make(), receivedAt: Date(), subscription: SubscriptionReference(name: user.userPrincipalName, id: "s", resource: nil),
                changeType: "created", resource: "Users/\(user.id)/Messages/\(message.id)"),
            attachment: nil)
    }

    static func targets(_ users: [SimulatedUser]) -> [String: GraphEnricher.Target] {
        Dictionary(
            uniqueKeysWithValues: users.map {
                ($0.userPrincipalName, GraphEnricher.Target(resource: "users/\($0.userPrincipalName)/messages", select: ["subject"]))
            })
    }

    /// Enriches every event at once; the results in the same order.
    static func enrichAll(_ enricher: GraphEnricher, _ events: [PendingEvent]) async -> [BridgeEvent?] {
        await withTaskGroup(of: (Int, BridgeEvent?).self) { group in
            for (index, event) in events.enumerated() { group.addTask { (index, await enricher.enrich(event)) } }
            var results = [BridgeEvent?](repeating: nil, count: events.count)
            for await (index, event) in group { results[index] = event }
            return results
        }
    }

    @Test(
        "a throttled mailbox holds up neither another subscription's events nor a lifecycle event; its own event follows with data once Graph lets it"
    )
    func throttledMailboxHoldsNobodyUp() async throws {
        let directory = TemporaryDirectory()
        let bob = SubscriptionManager.Declaration(
            name: "bob", resource: "users/bob@contoso.com/mailFolders('Inbox')/messages", changeTypes: ["created"], expiration: nil,
            includeResourceData: false)
        try await withSimulator { simulator in
            let http = CurlClient()
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http),
                targets: [
                    "inbox": .init(resource: BridgeUnderTest.inbox.resource, select: ["subject"]),
                    "bob": .init(resource: bob.resource, select: ["subject"]),
                ],
                logger: quiet)
            let collector = EventCollector()
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [BridgeUnderTest.inbox, bob],
                engine: { collector.engine(store: $0, enricher: enricher) }
            ) { bridge in
                let created = try await eventually { simulator.subscriptions.count == 2 }
                #expect(created)
                let alicesID = try #require(simulator.subscriptions.first { $0.resource == BridgeUnderTest.inbox.resource }?.id)

                simulator.throttleMailbox("alice@contoso.com", retryAfter: 2)
                _ = try simulator.createMessage(MessageContent(subject: "for alice"), in: "alice@contoso.com")
                _ = try await simulator.waitForRequest { $0.status == 429 && $0.path.contains("alice@contoso.com") }

                // Alice's mailbox stays throttled until the test lifts it: whatever flows now
                // flowed past her waiting read, however slow the machine (the wait is only a guard).
                _ = try simulator.createMessage(MessageContent(subject: "for bob"), in: "bob@contoso.com")
                _ = try simulator.sendLifecycleEvent(.missed, subscriptionID: alicesID)
                let flowed = await collector.wait(for: 2, timeout: .seconds(60))
                #expect(flowed.count == 2, "the other subscription and the lifecycle event flowed while alice's read waited")
                #expect(flowed.contains { $0.subscription.name == "bob" && $0.data?["subject"]?.stringValue == "for bob" })
                #expect(flowed.contains { $0.subscription.name == "inbox" && $0.lifecycleEvent == "missed" })

                simulator.throttleMailbox("alice@contoso.com", retryAfter: nil)
                let all = await collector.wait(for: 3, timeout: .seconds(60))
                #expect(all.last?.subscription.name == "inbox")
                #expect(all.last?.data?["subject"]?.stringValue == "for alice", "fetched after the Retry-After, not routed without data")
            }
            await http.shutdown()
        }
    }

    @Test("the simulator serves 4 requests to one mailbox at once and answers a fifth 429 MailboxConcurrency with Retry-After, also inside a $batch")
    func simulatorMailboxLimit() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let graph = graphClient(for: simulator, http: http).retrying(atMost: 0)
            let message = try simulator.createMessage(MessageContent(subject: "one"), in: "alice@contoso.com").message
            // The four served hold their slots for 2 s (the two refused never reach the mailbox).
            simulator.injectFault(.delay(.seconds(2)), on: .getMessage, count: 4)
            let outcomes = await withTaskGroup(of: Result<Int, GraphError>.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        do {
                            return .success(try await graph.send("GET", "/users/alice@contoso.com/messages/\(message.id)").status)
                        } catch let error as GraphError {
                            return .failure(error)
                        } catch {
                            return .failure(GraphError(kind: .other, status: 0, code: nil, message: "\(error)", requestID: nil))
                        }
                    }
                }
                var outcomes: [Result<Int, GraphError>] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            let refused = outcomes.compactMap { outcome -> GraphError? in if case .failure(let error) = outcome { return error } else { return nil } }
            #expect(outcomes.filter { if case .success(200) = $0 { return true } else { return false } }.count == 4)
            #expect(refused.count == 2)
            #expect(refused.allSatisfy { $0.status == 429 && $0.code == "MailboxConcurrency" && $0.retryAfter == .seconds(1) })
            #expect(simulator.peakConcurrentRequests(mailbox: "alice@contoso.com") == 4)

            // Inside a $batch each request counts: six at once, four served, two refused, each answered in its place.
            simulator.injectFault(.delay(.seconds(2)), on: .getMessage, count: 4)
            let requests = (1...6).map { #"{"id":"\#($0)","method":"GET","url":"/users/alice@contoso.com/messages/\#(message.id)?$select=subject"}"# }
            let response = try await graph.send("POST", "/$batch", json: Array(#"{"requests":[\#(requests.joined(separator: ","))]}"#.utf8))
            let answers = try #require(try JSONParser.parse(response.body)["responses"]?.arrayValue)
            #expect(answers.compactMap { $0["id"]?.stringValue }.sorted() == (1...6).map(String.init))
            let statuses = answers.compactMap { $0["status"]?.scalarText }
            #expect(statuses.filter { $0 == "200" }.count == 4 && statuses.filter { $0 == "429" }.count == 2, "\(statuses)")
            for answer in answers where answer["status"]?.scalarText == "429" {
                #expect(answer["body"]?["error"]?["code"]?.stringValue == "MailboxConcurrency")
                #expect(answer["headers"]?["Retry-After"]?.stringValue == "1")
            }
            for answer in answers where answer["status"]?.scalarText == "200" {
                #expect(answer["body"]?["subject"]?.stringValue == "one")
            }
            await http.shutdown()
        }
    }

    @Test("40 items of one mailbox: every one fetched, never more than 4 reads of the mailbox at once, no 429")
    func fortyItemsOneMailbox() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let metrics = TestMetrics()
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http), targets: Self.targets([.alice]), logger: quiet, metrics: metrics)
            var events: [PendingEvent] = []
            for index in 0..<40 {
                let message = try simulator.createMessage(MessageContent(subject: "item \(index)"), in: "alice@contoso.com").message
                events.append(Self.pending(message, of: .alice, sequence: Int64(index + 1)))
            }
            // Slow answers, so that reads pile up if the bridge lets them.
            simulator.injectFault(.delay(.milliseconds(100)), on: .getMessage, count: 40)
            let enriched = await Self.enrichAll(enricher, events)
            #expect(enriched.map { $0?.data?["subject"]?.stringValue } == (0..<40).map { "item \($0)" })
            #expect(simulator.peakConcurrentRequests(mailbox: "alice@contoso.com") == 4, "4 at once, not more")
            #expect(metrics.counterTotal(label: "graph_bridge_enrichment_total", dimensions: [("outcome", "fetched")]) == 40)
            #expect(metrics.counterTotal(label: "graph_bridge_enrichment_total") == 40)
            #expect(simulator.requests.filter { $0.status == 429 }.count == 0, "no read was refused for MailboxConcurrency")
            await http.shutdown()
        }
    }

    @Test("reads of several mailboxes that queue up go out as one $batch; a 429 inside it is read again after its Retry-After; a whole-batch 503 too")
    func batchesAndInnerThrottling() async throws {
        try await withSimulator({ $0.users = [.alice, .bob, Self.carol] }) { simulator in
            let http = CurlClient()
            let users: [SimulatedUser] = [.alice, .bob, Self.carol]
            // One HTTP call at a time: while the first read is in flight, the others queue.
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http), targets: Self.targets(users), logger: quiet, concurrentCalls: 1)
            var events: [PendingEvent] = []
            for user in users {
                for index in 0..<3 {
                    let message = try simulator.createMessage(MessageContent(subject: "\(user.displayName) \(index)"), in: user.userPrincipalName)
                        .message
                    events.append(Self.pending(message, of: user))
                }
            }
            // The first call waits 300 ms for its token: the other reads queue up meanwhile.
            simulator.injectFault(.delay(.milliseconds(300)), on: .token)
            simulator.throttleMailbox("bob@contoso.com", retryAfter: 1)
            let enriching = Task { await Self.enrichAll(enricher, events) }

            // Bob's reads inside a batch are refused; lift the throttling once one was.
            let refused = try await simulator.waitForRequest { $0.status == 429 && $0.path.contains(SimulatedUser.bob.userPrincipalName) }
            simulator.throttleMailbox("bob@contoso.com", retryAfter: nil)
            let enriched = await enriching.value
            #expect(enriched.map { $0?.data?["subject"]?.stringValue } == users.flatMap { user in (0..<3).map { "\(user.displayName) \($0)" } })

            let batches = simulator.requests.filter { $0.method == "POST" && $0.path == "/v1.0/$batch" }
            #expect(!batches.isEmpty, "queued reads went out as $batch")
            let sizes = batches.compactMap { try? JSONParser.parse($0.body)["requests"]?.arrayValue?.count }
            #expect(sizes.contains { $0 > 1 } && sizes.allSatisfy { $0 <= 20 }, "\(sizes)")
            let mailboxesInOne = batches.map { batch in Set(users.filter { batch.bodyText.contains($0.userPrincipalName) }.map(\.id)).count }
            #expect(mailboxesInOne.contains { $0 > 1 }, "one batch held reads of several mailboxes")
            // Every refused read of Bob's was read again, and only after its Retry-After.
            let bobReads = simulator.requests.filter { $0.method == "GET" && $0.path.contains(SimulatedUser.bob.userPrincipalName) }
            #expect(bobReads.contains { $0.path == refused.path })
            for (index, read) in bobReads.enumerated() where read.status == 429 {
                let next = try #require(bobReads[(index + 1)...].first { $0.path == read.path }, "a refused read is read again")
                #expect(next.date.timeIntervalSince(read.date) >= 0.95, "read again only after Retry-After: 1")
            }
            #expect(bobReads.filter { $0.status == 200 }.count == 3)
            #expect(simulator.peakConcurrentRequests(mailbox: "bob@contoso.com") <= 4)

            // The whole batch answered 503 with Retry-After: every read in it waits and reads again.
            simulator.clearLogs()
            var more: [PendingEvent] = []
            for user in users {
                let message = try simulator.createMessage(MessageContent(subject: "again \(user.displayName)"), in: user.userPrincipalName).message
                more.append(Self.pending(message, of: user))
            }
            simulator.injectFault(.delay(.milliseconds(300)), on: .getMessage)
            simulator.injectFault(.serviceUnavailable(retryAfter: 1), on: .batch)
            let again = await Self.enrichAll(enricher, more)
            #expect(again.map { $0?.data?["subject"]?.stringValue } == users.map { "again \($0.displayName)" })
            let batchAnswers = simulator.requests.filter { $0.path == "/v1.0/$batch" }
            #expect(batchAnswers.first?.status == 503)
            if let unavailable = batchAnswers.first, let retried = batchAnswers.dropFirst().first {
                #expect(retried.status == 200)
                #expect(retried.date.timeIntervalSince(unavailable.date) >= 0.95, "the batch's reads waited its Retry-After")
            }
            await http.shutdown()
        }
    }
}
