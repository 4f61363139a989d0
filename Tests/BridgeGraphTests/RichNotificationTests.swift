import BridgeCore
import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import Logging
import MetricsTestKit
import Synchronization
import TestSupport
import Testing

/// Rich notifications (SPEC section 9) against the Graph simulator: the authority's discovery and
/// JWKS, and the whole path from a subscription with `includeResourceData` to a routed event.
@Suite("rich notifications", .timeLimit(.minutes(3)))
struct RichNotificationTests {
    static func validator(for simulator: GraphSimulator, http: CurlClient, tenant: String? = nil) -> ValidationTokenValidator {
        let endpoints = GraphEndpoints(authority: simulator.authorityURL, graphBase: simulator.graphBaseURL)
        let tenant = tenant ?? simulator.tenantID
        return ValidationTokenValidator(
            policy: .init(audiences: [simulator.configuration.clientID], tenant: tenant, authority: endpoints.authority),
            keys: AuthoritySigningKeys(http: http, endpoints: endpoints, tenant: tenant), minimumRefetchInterval: 0)
    }

    static func reason(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let error as RichNotificationError {
            return error.reason
        } catch {
            return "unexpected: \(error)"
        }
    }

    @Test("the keys come through the tenant's OpenID configuration (a domain resolves to the tenant id); an unknown kid refetches them")
    func discovery() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let validator = Self.validator(for: simulator, http: http, tenant: "contoso.onmicrosoft.com")
            #expect(await Self.reason { try await validator.validate([try simulator.makeValidationToken()]) } == nil)
            let discovery = simulator.requests.filter { $0.path.hasSuffix("/v2.0/.well-known/openid-configuration") }
            #expect(discovery.map(\.path) == ["/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"])
            #expect(simulator.requests.filter { $0.path.hasSuffix("/discovery/v2.0/keys") }.count == 1)

            var wrongAudience = ValidationTokenOptions()
            wrongAudience.audience = "00000000-0000-0000-0000-000000000001"
            #expect(await Self.reason { try await validator.validate([try simulator.makeValidationToken(wrongAudience)]) } == "wrong_audience")
            var unknownKey = ValidationTokenOptions()
            unknownKey.keyID = "rotated-away"
            #expect(await Self.reason { try await validator.validate([try simulator.makeValidationToken(unknownKey)]) } == "unknown_key")
            #expect(simulator.requests.filter { $0.path.hasSuffix("/discovery/v2.0/keys") }.count == 2, "the unknown kid refetched the JWKS")
            await http.shutdown()
        }
    }

    @Test(
        "includeResourceData end to end: the certificate goes with the subscription, the decrypted mail is the routed event's data; tampered content and a bad token are dropped and counted"
    )
    func endToEnd() async throws {
        let directory = TemporaryDirectory()
        let certificate = try SelfSignedCertificate.generate(commonName: "graph-bridge-rich-test")
        let key = try RichContentKey(id: "enc-test", certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
        let declaration = SubscriptionManager.Declaration(
            name: "inbox-rich", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages?$select=subject,from,receivedDateTime",
            changeTypes: ["created"], expiration: nil, includeResourceData: true, encryption: .init(certificate: key.certificateBase64, id: key.id))
        let metrics = TestMetrics()
        let collector = EventCollector()

        try await withSimulator { simulator in
            let http = CurlClient()
            let enricher = RichNotificationEnricher(
                validator: Self.validator(for: simulator, http: http), decryptor: RichContentDecryptor(keys: [key]), logger: quiet, metrics: metrics)
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [declaration],
                engine: { store in collector.engine(store: store, enricher: enricher) }
            ) { bridge in
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                let subscription = try #require(simulator.subscriptions.first)
                #expect(subscription.includeResourceData)
                #expect(subscription.encryptionCertificate == key.certificateBase64)
                #expect(subscription.encryptionCertificateID == "enc-test")

                // A genuine rich notification: decrypted into data, nothing fetched from Graph.
                let first = try simulator.createMessage(MessageContent(subject: "Encrypted hello"), in: "alice@contoso.com")
                let routed = await collector.wait(for: 1)
                let journaled = (try? await bridge.store.eventCount()) ?? -1
                try #require(routed.count == 1, """
                    the genuine rich notification was not routed; rejected: \(metrics.rejectedSummary); \
                    deliveries: \(simulator.deliveries.map { "\($0.kind) #\($0.attempt) \($0.status.map(String.init) ?? "no answer") \($0.error ?? "")" }); \
                    journaled: \(journaled)
                    """)
                #expect(routed[0].data?["subject"]?.stringValue == "Encrypted hello")
                #expect(routed[0].data?["from"]?["emailAddress"]?["address"]?.stringValue != nil)
                #expect(routed[0].data?["id"]?.stringValue == first.message.id)
                #expect(routed[0].resourceData?["id"]?.stringValue == first.message.id)
                #expect(!simulator.requests.contains { $0.path.contains("/messages/") }, "the content came encrypted, not by a GET")
                #expect(metrics.counterTotal(label: "graph_bridge_rich_notifications_decrypted_total") == 1)

                // Replays of that POST, altered, straight to the listener (new etags, so not duplicates).
                let genuine = try #require(simulator.deliveries.last { $0.kind == .changeNotification && $0.succeeded }?.body)
                let tampered = try Self.rewrite(genuine, etag: "tampered-1") { item in
                    var content = try #require(item["encryptedContent"]?.objectValue)
                    let data = try #require(content["data"]?.stringValue)
                    content["data"] = .string((data.hasPrefix("A") ? "B" : "A") + data.dropFirst())
                    item["encryptedContent"] = .object(content)
                }
                var badAudience = ValidationTokenOptions()
                badAudience.audience = "00000000-0000-0000-0000-000000000001"
                let forgedToken = try simulator.makeValidationToken(badAudience)
                let badToken = try Self.rewrite(genuine, etag: "bad-token-1", tokens: [forgedToken]) { _ in }
                let noToken = try Self.rewrite(genuine, etag: "no-token-1", tokens: []) { _ in }
                for body in [tampered, badToken, noToken] {
                    let response = try await http.execute(
                        HTTPRequest(
                            method: "POST", url: subscription.notificationURL, headers: [("Content-Type", "application/json")], body: body))
                    #expect(response.status == 202, "answered 202 first: validation happens after the acknowledgement")
                }

                // The journal is routed in order: once a later genuine mail arrives, the three were handled.
                _ = try simulator.createMessage(MessageContent(subject: "Second"), in: "alice@contoso.com")
                let all = await collector.wait(for: 2)
                try #require(all.count == 2, "the second genuine notification was not routed; rejected: \(metrics.rejectedSummary)")
                #expect(all.map { $0.data?["subject"]?.stringValue } == ["Encrypted hello", "Second"], "nothing forged was routed")
                #expect(
                    metrics.counterTotal(label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", "data_signature_mismatch")])
                        == 1)
                #expect(
                    metrics.counterTotal(label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", "wrong_audience")]) == 1)
                #expect(
                    metrics.counterTotal(
                        label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", "missing_validation_tokens")]) == 1)
                #expect(metrics.counterTotal(label: "graph_bridge_rich_notifications_decrypted_total") == 2)
            }
            await http.shutdown()
        }
    }

    @Test("signing keys that cannot be fetched are an outage, not a forgery: the event is routed without data, counted, not dropped")
    func keysUnavailable() async throws {
        struct Unreachable: SigningKeySource {
            struct Down: Error {}
            func fetchSigningKeys() async throws -> PublishedSigningKeys { throw Down() }
        }
        let certificate = try SelfSignedCertificate.generate(commonName: "graph-bridge-rich-test")
        let key = try RichContentKey(id: "enc-test", certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
        try await withSimulator { simulator in
            let validator = ValidationTokenValidator(
                policy: .init(audiences: [simulator.configuration.clientID], tenant: simulator.tenantID, authority: simulator.authorityURL),
                keys: Unreachable(), minimumRefetchInterval: 0)
            let metrics = TestMetrics()
            let enricher = RichNotificationEnricher(validator: validator, decryptor: RichContentDecryptor(keys: [key]), logger: quiet, metrics: metrics)
            let event = BridgeEvent(
                id: EventID.make(at: Date()), receivedAt: Date(), subscription: SubscriptionReference(name: "inbox-rich", id: "s1", resource: nil),
                changeType: "created", lifecycleEvent: nil, resource: "Users/1/Messages/1", resourceData: nil, tenantId: nil)
            let attachment: BridgeCore.JSONValue = .object([
                "validationTokens": .array([.string(try simulator.makeValidationToken(ValidationTokenOptions()))]),
                "encryptedContent": .object([
                    "data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln", "encryptionCertificateId": "enc-test",
                ]),
            ])
            let routed = await enricher.enrich(PendingEvent(sequence: 1, event: event, attachment: attachment))
            #expect(routed != nil, "an outage of the authority must not drop the event")
            #expect(routed?.data == nil, "content that could not be checked is not shown")
            #expect(metrics.counterTotal(label: "graph_bridge_rich_notifications_undecrypted_total", dimensions: [("reason", "signing_keys_unavailable")]) == 1)
            #expect(metrics.rejectedSummary == "none")
        }
    }

    /// The POST `body` with its first item's etag replaced, `change` applied to that item, and optionally other `validationTokens`.
    static func rewrite(_ body: [UInt8], etag: String, tokens: [String]? = nil, _ change: (inout JSONObject) throws -> Void) throws -> [UInt8] {
        var root = try #require(try BridgeCore.JSONParser.parse(body).objectValue)
        var items = try #require(root["value"]?.arrayValue)
        var item = try #require(items.first?.objectValue)
        var resourceData = try #require(item["resourceData"]?.objectValue)
        resourceData["@odata.etag"] = .string(etag)
        item["resourceData"] = .object(resourceData)
        try change(&item)
        items[0] = .object(item)
        root["value"] = .array(items)
        if let tokens { root["validationTokens"] = .array(tokens.map(BridgeCore.JSONValue.string)) }
        return BridgeCore.JSONValue.object(root).serialized()
    }
}

/// Everything the delivery engine routes goes to one sink that keeps the events in order.
final class EventCollector: Sendable {
    private let state = Mutex<[BridgeEvent]>([])
    private let arrived = Tally()

    func engine(store: SQLiteStateStore, enricher: any EventEnricher) -> DeliveryEngine {
        let sink = CollectingSink(collector: self)
        let configured = ConfiguredSink(
            name: "collect", type: CollectingSink.typeName, retry: .default, concurrency: 1,
            factory: SinkFactory(defaultConcurrency: 1) { _ in sink })
        return DeliveryEngine(
            store: store, router: Router(routes: [Route(matcher: nil, sinks: ["collect"])]), sinks: [.init(configuration: configured, sink: sink)],
            enricher: enricher, logger: quiet)
    }

    func add(_ event: BridgeEvent) {
        state.withLock { $0.append(event) }
        arrived.add()
    }

    /// The events once at least `count` have arrived, or the ones there are after `timeout`
    /// (a lost event fails the test's expectations instead of hanging the run).
    func wait(for count: Int, timeout: Duration = .seconds(20)) async -> [BridgeEvent] {
        await arrived.wait(for: count, timeout: timeout)
        return state.withLock { $0 }
    }
}

struct CollectingSink: Sink {
    static let typeName = "collect"
    struct Configuration: Decodable, Sendable {}
    let collector: EventCollector

    init(collector: EventCollector) { self.collector = collector }
    init(name: String, configuration: Configuration, context: SinkContext) throws { collector = EventCollector() }

    func deliver(_ event: BridgeEvent, attempt: BridgeCore.DeliveryAttempt) async throws { collector.add(event) }
}

extension TestMetrics {
    /// Every rejection reason counted so far, for failure messages.
    var rejectedSummary: String {
        let counts = counters.filter { $0.label == "graph_bridge_rich_notifications_rejected_total" }
            .map { counter in "\(counter.dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",")): \(counter.totalValue)" }
        return counts.isEmpty ? "none" : counts.joined(separator: "; ")
    }
}
