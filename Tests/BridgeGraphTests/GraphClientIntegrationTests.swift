import BridgeCore
import BridgeGraph
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import MetricsTestKit
import Testing
import TestSupport

/// The Graph client's auth and error handling against the simulator.
@Suite("Graph client against the simulator", .timeLimit(.minutes(2)))
struct GraphClientIntegrationTests {
    static func tokenRequests(_ simulator: GraphSimulator) -> Int {
        simulator.requests.filter { $0.path.hasSuffix("/oauth2/v2.0/token") }.count
    }

    @Test("the token is cached while fresh and renewed before it expires")
    func tokenRenewal() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let client = graphClient(for: simulator, http: http)
            _ = try await client.listSubscriptions()
            _ = try await client.listSubscriptions()
            #expect(Self.tokenRequests(simulator) == 1)
            await http.shutdown()
        }
        // A token with less than a minute left is renewed before use.
        try await withSimulator({ $0.accessTokenLifetime = .seconds(30) }) { simulator in
            let http = CurlClient()
            let client = graphClient(for: simulator, http: http)
            _ = try await client.listSubscriptions()
            _ = try await client.listSubscriptions()
            #expect(Self.tokenRequests(simulator) == 2)
            await http.shutdown()
        }
    }

    @Test("a 401 gets one fresh token and a retry")
    func unauthorizedRetries() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let client = graphClient(for: simulator, http: http)
            _ = try await client.listSubscriptions()
            simulator.expireAccessTokens()
            _ = try await client.listSubscriptions()
            #expect(simulator.requests.contains { $0.path == "/v1.0/subscriptions" && $0.status == 401 })
            #expect(Self.tokenRequests(simulator) == 2)
            await http.shutdown()
        }
    }

    @Test("the certificate assertion signs in; a certificate Graph does not know is refused")
    func certificate() async throws {
        let registered = try SelfSignedCertificate.generate()
        let stranger = try SelfSignedCertificate.generate()
        try await withSimulator({ $0.certificatePEMs = [registered.certificatePEM] }) { simulator in
            let http = CurlClient()
            let good = try CertificateAssertion(certificatePEM: registered.certificatePEM, privateKeyPEM: registered.privateKeyPEM)
            _ = try await graphClient(for: simulator, http: http, credential: .certificate(good)).listSubscriptions()
            let bad = try CertificateAssertion(certificatePEM: stranger.certificatePEM, privateKeyPEM: stranger.privateKeyPEM)
            await #expect {
                _ = try await graphClient(for: simulator, http: http, credential: .certificate(bad)).listSubscriptions()
            } throws: { error in
                (error as? GraphError)?.kind == .authentication
            }
            await http.shutdown()
        }
    }

    @Test("429 and 503 are retried after Retry-After; 403 surfaces Graph's code and request-id")
    func errors() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let client = graphClient(for: simulator, http: http)
            simulator.injectFault(.tooManyRequests(retryAfter: 1), on: .listSubscriptions, count: 1)
            simulator.injectFault(.serviceUnavailable(retryAfter: nil), on: .listSubscriptions, count: 1)
            let started = ContinuousClock.now
            _ = try await client.listSubscriptions()
            #expect(ContinuousClock.now - started >= .seconds(1), "waited for Retry-After")
            let attempts = simulator.requests.filter { $0.path == "/v1.0/subscriptions" && $0.method == "GET" }
            #expect(attempts.map(\.status) == [429, 503, 200])
            // One client-request-id per call, the same on each retry (what Microsoft support asks for).
            let clientRequestIDs = Set(attempts.compactMap { $0.header("client-request-id") })
            #expect(clientRequestIDs.count == 1 && attempts.allSatisfy { $0.header("client-request-id") != nil })

            simulator.injectFault(.error(status: 403, code: "ExtensionError", message: "Number of subscriptions on item has exceeded limit"), on: .listSubscriptions, count: 1)
            await #expect {
                _ = try await client.listSubscriptions()
            } throws: { error in
                guard let error = error as? GraphError else { return false }
                return error.kind == .forbidden && error.code == "ExtensionError" && error.requestID?.isEmpty == false
                    && error.message.contains("exceeded limit")
            }
            await http.shutdown()
        }
    }

    @Test("device code login: pending, slow_down (+5 s), approval; the refresh token rotates")
    func deviceCode() async throws {
        try await withSimulator({ $0.deviceCodePollingInterval = 1 }) { simulator in
            let http = CurlClient()
            let endpoints = GraphEndpoints(authority: simulator.authorityURL, graphBase: simulator.graphBaseURL)
            let clock = ManualTestClock(start: Date())
            let flow = DeviceCodeFlow(endpoints: endpoints, tenant: simulator.tenantID, clientID: simulator.configuration.clientID,
                                      scopes: "offline_access \(endpoints.defaultScope)", http: http, logger: quiet, clock: clock)
            let prompt = try await flow.start()
            #expect(prompt.message.contains(prompt.userCode))
            #expect(simulator.slowDownDeviceCode(userCode: prompt.userCode, times: 1))
            let polling = Task { try await flow.poll(prompt) }
            // Polls at 1 s (slow_down), 7 s (pending) and 13 s: pending keeps the interval, slow_down adds 5 s.
            for (wait, until) in [(1, 1), (6, 7), (6, 13)] as [(Int64, Int64)] {
                try #require(await clock.sleeper { _ in true }.offset == .seconds(until))
                // The user signs in while the bridge waits the third time.
                if until == 13 { _ = simulator.approveDeviceCode(userCode: prompt.userCode) }
                clock.advance(by: .seconds(wait))
            }
            let tokens = try await polling.value
            #expect(simulator.requests.filter { $0.bodyText.contains("device_code") && $0.path.hasSuffix("/token") }.count == 3)
            let refresh = try #require(tokens.refreshToken)

            let storage = MemoryRefreshTokens(refresh)
            let provider = RefreshTokenProvider(endpoints: endpoints, tenant: simulator.tenantID, clientID: simulator.configuration.clientID,
                                                scopes: "offline_access \(endpoints.defaultScope)", storage: storage, http: http, logger: quiet)
            let client = GraphClient(endpoints: endpoints, tokens: provider, http: http, logger: quiet)
            _ = try await client.listSubscriptions()
            let rotated = try #require(try await storage.loadRefreshToken())
            #expect(rotated != refresh, "the rotated refresh token replaced the old one")
            await http.shutdown()
        }
    }

    @Test("fetch: the changed mail's selected fields become the event's data; transient failures are retried; a deleted mail routes without data")
    func enrichment() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let metrics = TestMetrics()
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http),
                targets: ["inbox": .init(resource: "users/alice@contoso.com/mailFolders('Inbox')/messages", select: ["subject", "from"])], logger: quiet,
                metrics: metrics)
            let change = try simulator.createMessage(MessageContent(subject: "Quarterly \"numbers\" ✓"), in: "alice@contoso.com")
            let resource = "Users/\(SimulatedUser.alice.id)/Messages/\(change.message.id)"
            func pending(_ changeType: String) -> PendingEvent {
                PendingEvent(sequence: 1, event: BridgeEvent(
                    id: "e", receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: "s", resource: nil),
                    changeType: changeType, resource: resource), attachment: nil)
            }
            let enriched = await enricher.enrich(pending("created"))
            #expect(enriched?.data?["subject"]?.stringValue == "Quarterly \"numbers\" ✓")
            #expect(enriched?.data?["from"]?["emailAddress"]?["address"]?.stringValue == "alerts@contoso.com")
            #expect(enriched?.data?["bodyPreview"] == nil, "only the selected fields")

            // Transient failures are retried: two 503s, then the item.
            simulator.injectFault(.serviceUnavailable(retryAfter: nil), on: .getMessage, count: 2)
            let retried = await enricher.enrich(pending("created"))
            #expect(retried?.data?["subject"]?.stringValue == "Quarterly \"numbers\" ✓")
            #expect(simulator.requests.filter { $0.path.contains(change.message.id) }.map(\.status).suffix(3) == [503, 503, 200])

            // Outside the subscription's resource: nothing is read, the event routes without data.
            let before = simulator.requests.count
            for outside in ["Users/\(SimulatedUser.bob.id)/MailFolders/x/Messages/\(change.message.id)", "Users/\(SimulatedUser.alice.id)/Messages/../../groups",
                            "Users/\(SimulatedUser.alice.id)/Messages/\(change.message.id)?$expand=attachments", "groups/g1"] {
                var event = pending("created")
                event.event.resource = outside
                #expect(await enricher.enrich(event)?.data == nil, "\(outside)")
            }
            #expect(simulator.requests.count == before, "no request left for a resource outside the subscription")

            // A permanent failure: routed without data at once, counted as failed.
            simulator.injectFault(.error(status: 403, code: "ErrorAccessDenied", message: "Access is denied."), on: .getMessage)
            #expect(await enricher.enrich(pending("created"))?.data == nil)

            _ = try simulator.deleteMessage(id: change.message.id)
            let gone = await enricher.enrich(pending("updated"))
            #expect(gone?.data == nil)
            func outcomes(_ outcome: String) -> Int64 {
                metrics.counterTotal(label: "graph_bridge_enrichment_total", dimensions: [("outcome", outcome)])
            }
            #expect([outcomes("fetched"), outcomes("refused"), outcomes("gone"), outcomes("failed")] == [2, 4, 1, 1])
            await http.shutdown()
        }
    }
}
