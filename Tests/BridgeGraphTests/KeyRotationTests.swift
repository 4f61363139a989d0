import BridgeCore
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import MetricsTestKit
import TestSupport
import Testing

@testable import BridgeGraph

/// The real rich-notification fixture (Microsoft's .NET SDK tests) beside the checkout.
let richVectorDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/graph-vectors/rich-notification-dotnet-core").path
let richVectorsPresent = FileManager.default.fileExists(atPath: richVectorDirectory + "/certificate.pem")

/// Key rotation for rich notifications (SPEC section 9): `previous:` key pairs still decrypt what
/// Graph encrypted before, and a new current key moves the subscription by PATCH, never by recreating it.
@Suite("rich notifications: key rotation", .timeLimit(.minutes(3)))
struct KeyRotationTests {
    static func key(_ id: String) throws -> RichContentKey {
        let certificate = try SelfSignedCertificate.generate(commonName: "rotation-\(id)")
        return try RichContentKey(id: id, certificatePEM: certificate.certificatePEM, privateKeyPEM: certificate.privateKeyPEM)
    }

    /// The fixture's key pair under its own id (`custom-id-for-testing`).
    static func fixtureKey() throws -> RichContentKey {
        try RichContentKey(
            id: "custom-id-for-testing",
            certificatePEM: try String(contentsOfFile: richVectorDirectory + "/certificate.pem", encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: richVectorDirectory + "/private-key.pem", encoding: .utf8))
    }

    static func declaration(_ key: RichContentKey) -> SubscriptionManager.Declaration {
        SubscriptionManager.Declaration(
            name: "inbox-rich", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages?$select=subject", changeTypes: ["created"],
            expiration: nil, includeResourceData: true, encryption: .init(certificate: key.certificateBase64, id: key.id))
    }

    static func event() -> BridgeEvent {
        BridgeEvent(
            id: EventID.make(at: Date()), receivedAt: Date(), subscription: SubscriptionReference(name: "teams", id: "s1", resource: nil),
            changeType: "created", lifecycleEvent: nil, resource: "teams/1/channels/1/messages/1", resourceData: nil, tenantId: nil)
    }

    @Test(
        "with a new current key, the real fixture's content still decrypts through its previous key; an id no key has is refused; without the previous key the fixture is refused",
        .enabled(if: richVectorsPresent, "needs ../shared/graph-vectors/rich-notification-dotnet-core beside the checkout"))
    func previousKeyDecrypts() async throws {
        let previous = try Self.fixtureKey()
        let current = try Self.key("enc-2027")
        let content = try #require(
            try BridgeCore.JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: richVectorDirectory + "/encrypted-content.json"))))
                .objectValue)
        try await withSimulator { simulator in
            let http = CurlClient()
            let token = try simulator.makeValidationToken()
            func attachment(id: String? = nil) -> BridgeCore.JSONValue {
                var encrypted = content
                if let id {
                    encrypted["encryptionCertificateId"] = .string(id)
                    encrypted["encryptionCertificateThumbprint"] = nil
                }
                return .object(["validationTokens": .array([.string(token)]), "encryptedContent": .object(encrypted)])
            }
            let metrics = TestMetrics()
            let rotated = RichNotificationEnricher(
                validator: RichNotificationTests.validator(for: simulator, http: http), decryptor: RichContentDecryptor(keys: [current, previous]),
                logger: quiet, metrics: metrics)
            let decrypted = await rotated.enrich(PendingEvent(sequence: 1, event: Self.event(), attachment: attachment()))
            #expect(decrypted?.data?["body"]?["content"]?.stringValue == "Hello World")
            #expect(decrypted?.data?["etag"]?.stringValue == "1625126194597")
            #expect(
                metrics.counterTotal(
                    label: "graph_bridge_rich_notifications_decrypted_total",
                    dimensions: [("subscription", "teams"), ("encryption_id", "custom-id-for-testing")])
                    == 1, "counted under the key that decrypted it")

            let unknown = await rotated.enrich(PendingEvent(sequence: 2, event: Self.event(), attachment: attachment(id: "enc-2025")))
            #expect(unknown == nil)
            #expect(
                metrics.counterTotal(label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", "unknown_certificate_id")]) == 1
            )

            let currentOnly = RichNotificationEnricher(
                validator: RichNotificationTests.validator(for: simulator, http: http), decryptor: RichContentDecryptor(keys: [current]),
                logger: quiet, metrics: metrics)
            #expect(await currentOnly.enrich(PendingEvent(sequence: 3, event: Self.event(), attachment: attachment())) == nil)
            #expect(
                metrics.counterTotal(label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", "unknown_certificate_id")]) == 2
            )
            await http.shutdown()
        }
    }

    @Test(
        "a restart with a new current key PATCHes the certificate onto the same subscription (no delete, no second create); an item Graph encrypted for the old key decrypts through previous, later ones use the new key"
    )
    func restartWithNewKey() async throws {
        let directory = TemporaryDirectory()
        let port = try reservedLoopbackPort()  // the same public URL across restarts, as in production
        let old = try Self.key("enc-2026")
        let new = try Self.key("enc-2027")
        try await withSimulator { simulator in
            let http = CurlClient()
            let metrics = TestMetrics()
            // First run: the old key is the current one.
            let firstCollector = EventCollector()
            let firstEnricher = RichNotificationEnricher(
                validator: RichNotificationTests.validator(for: simulator, http: http), decryptor: RichContentDecryptor(keys: [old]), logger: quiet,
                metrics: metrics)
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.declaration(old)], port: port,
                engine: { firstCollector.engine(store: $0, enricher: firstEnricher) }
            ) { _ in
                _ = try await simulator.waitForRequest { $0.method == "POST" && $0.path == "/v1.0/subscriptions" && $0.status == 201 }
                _ = try simulator.createMessage(MessageContent(subject: "before the rotation"), in: "alice@contoso.com")
                #expect(await firstCollector.wait(for: 1).map { $0.data?["subject"]?.stringValue } == ["before the rotation"])
            }
            let subscription = try #require(simulator.subscriptions.first)
            #expect(subscription.encryptionCertificateID == "enc-2026")
            let oldBody = try #require(simulator.deliveries.last { $0.kind == .changeNotification && $0.succeeded }?.body)

            // Second run: the new key is current, the old one previous.
            let collector = EventCollector()
            let enricher = RichNotificationEnricher(
                validator: RichNotificationTests.validator(for: simulator, http: http), decryptor: RichContentDecryptor(keys: [new, old]),
                logger: quiet, metrics: metrics)
            try await BridgeUnderTest.run(
                simulator: simulator, statePath: directory.file("state.sqlite"), declarations: [Self.declaration(new)], port: port,
                engine: { collector.engine(store: $0, enricher: enricher) }
            ) { bridge in
                let patch = try await simulator.waitForRequest {
                    $0.method == "PATCH" && $0.path == "/v1.0/subscriptions/\(subscription.id)" && $0.status == 200
                }
                let sent = try #require(BridgeCore.JSONParser.parse(patch.body).objectValue)
                #expect(sent["encryptionCertificate"]?.stringValue == new.certificateBase64)
                #expect(sent["encryptionCertificateId"]?.stringValue == "enc-2027")
                #expect(sent["expirationDateTime"] != nil, "renewed in the same PATCH")
                #expect(simulator.subscriptions.map(\.id) == [subscription.id], "the same subscription")
                #expect(simulator.subscriptions.first?.encryptionCertificate == new.certificateBase64)
                #expect(try await eventually { bridge.manager.isReady })

                // Graph encrypted this before the PATCH (a retry arriving late): it names the old id.
                let late = try RichNotificationTests.rewrite(oldBody, etag: "late-retry-1") { _ in }
                let response = try await http.execute(
                    HTTPRequest(method: "POST", url: subscription.notificationURL, headers: [("Content-Type", "application/json")], body: late))
                #expect(response.status == 202)
                #expect(await collector.wait(for: 1).map { $0.data?["subject"]?.stringValue } == ["before the rotation"])

                _ = try simulator.createMessage(MessageContent(subject: "after the rotation"), in: "alice@contoso.com")
                let routed = await collector.wait(for: 2)
                #expect(routed.map { $0.data?["subject"]?.stringValue } == ["before the rotation", "after the rotation"])
                let newest = try #require(simulator.deliveries.last { $0.kind == .changeNotification && $0.succeeded }?.body)
                let item = try #require(BridgeCore.JSONParser.parse(newest).objectValue?["value"]?.arrayValue?.first)
                #expect(item["encryptedContent"]?["encryptionCertificateId"]?.stringValue == "enc-2027", "Graph encrypts for the new certificate")
            }
            #expect(SubscriptionManagerTests.posts(simulator).count == 1, "never recreated")
            #expect(!simulator.requests.contains { $0.method == "DELETE" })
            #expect(simulator.requests.filter { $0.method == "PATCH" && $0.bodyText.contains("encryptionCertificate") }.count == 1)
            #expect(
                metrics.counterTotal(
                    label: "graph_bridge_rich_notifications_decrypted_total",
                    dimensions: [("subscription", "inbox-rich"), ("encryption_id", "enc-2026")])
                    == 2, "before the rotation, and the late retry")
            #expect(
                metrics.counterTotal(
                    label: "graph_bridge_rich_notifications_decrypted_total",
                    dimensions: [("subscription", "inbox-rich"), ("encryption_id", "enc-2027")])
                    == 1)
            await http.shutdown()
        }
    }
}
