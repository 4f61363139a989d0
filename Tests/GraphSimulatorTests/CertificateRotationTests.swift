import Crypto
import CurlKit
import Foundation
import Testing
import _CryptoExtras

@testable import GraphSimulator

/// Key rotation for rich notifications (graph-protocol 5.3): a PATCH moves a subscription to a
/// new `encryptionCertificate`/`encryptionCertificateId`; later notifications are encrypted for it.
@Suite("rich notifications: certificate rotation by PATCH")
struct CertificateRotationTests {
    static func richBody(_ live: Live, certificate: SelfSignedCertificate, id: String) -> JSONValue {
        live.subscriptionBody(resource: "users/alice@contoso.com/messages?$select=subject")
            .setting("includeResourceData", true)
            .setting("encryptionCertificate", .string(Data(certificate.derRepresentation).base64EncodedString()))
            .setting("encryptionCertificateId", .string(id))
    }

    /// The subject of a delivered item, decrypted with `certificate`'s private key.
    static func subject(of encrypted: JSONValue, with certificate: SelfSignedCertificate) throws -> String? {
        let privateKey = try _RSA.Encryption.PrivateKey(pemRepresentation: certificate.privateKeyPEM)
        let key = try privateKey.decrypt(try #require(Data(base64Encoded: encrypted["dataKey"]?.stringValue ?? "")), padding: .PKCS1_OAEP)
        let ciphertext = try #require(Data(base64Encoded: encrypted["data"]?.stringValue ?? ""))
        let plain = try AES._CBC.decrypt(ciphertext, using: SymmetricKey(data: key), iv: AES._CBC.IV(ivBytes: key.prefix(16)))
        return JSONValue.parse(Array(plain))?["subject"]?.stringValue
    }

    @Test("a PATCH with the new certificate, its id and the renewal keeps the subscription; later items are encrypted for the new certificate")
    func patchMovesTheCertificate() async throws {
        let old = try SelfSignedCertificate.generate(commonName: "rotation-old")
        let new = try SelfSignedCertificate.generate(commonName: "rotation-new")
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, Self.richBody(live, certificate: old, id: "enc-old"))
            try live.simulator.createMessage(MessageContent(subject: "before"), in: "alice@contoso.com")
            let first = try await live.subscriber.notifications.first { _ in true }
            let firstContent = try #require(first.items.first?["encryptedContent"])
            #expect(firstContent["encryptionCertificateId"] == "enc-old")
            #expect(try Self.subject(of: firstContent, with: old) == "before")

            let patch: JSONValue = .object([
                "expirationDateTime": .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(3600))),
                "encryptionCertificate": .string(Data(new.derRepresentation).base64EncodedString()),
                "encryptionCertificateId": "enc-new",
            ])
            let patched = try await live.call("PATCH", "/subscriptions/\(id)", token: token, json: patch)
            #expect(patched.status == 200, "\(patched.bodyText)")
            #expect(patched.json?["id"]?.stringValue == id, "the same subscription")
            #expect(patched.json?["encryptionCertificateId"] == "enc-new")
            #expect(try await live.call("GET", "/subscriptions/\(id)", token: token).json?["encryptionCertificateId"] == "enc-new")
            #expect(live.simulator.subscriptions.count == 1)

            try live.simulator.createMessage(MessageContent(subject: "after"), in: "alice@contoso.com")
            let second = try await live.subscriber.notifications.first { received in
                received.items.first?["encryptedContent"]?["encryptionCertificateId"] == "enc-new"
            }
            let secondContent = try #require(second.items.first?["encryptedContent"])
            #expect(secondContent["encryptionCertificateThumbprint"]?.stringValue == new.sha1Thumbprint)
            #expect(try Self.subject(of: secondContent, with: new) == "after")
        }
    }

    @Test(
        "a certificate that is not an RSA X.509, an id over 128 characters, and a certificate on a subscription without includeResourceData are refused"
    )
    func patchRefusals() async throws {
        let certificate = try SelfSignedCertificate.generate(commonName: "rotation")
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let rich = try await live.createSubscription(token: token, Self.richBody(live, certificate: certificate, id: "enc-1"))
            let expiry = JSONValue.string(GraphDate.subscriptionFormat(Date().addingTimeInterval(3600)))
            let garbage = try await live.call(
                "PATCH", "/subscriptions/\(rich)", token: token,
                json: .object(["expirationDateTime": expiry, "encryptionCertificate": "bm90IGEgY2VydGlmaWNhdGU=", "encryptionCertificateId": "enc-2"])
            )
            #expect(garbage.status == 400)
            let longID = try await live.call(
                "PATCH", "/subscriptions/\(rich)", token: token,
                json: .object(["expirationDateTime": expiry, "encryptionCertificateId": .string(String(repeating: "x", count: 129))]))
            #expect(longID.status == 400)
            #expect(live.simulator.subscriptions.first { $0.id == rich }?.encryptionCertificateID == "enc-1", "nothing changed")

            let plain = try await live.createSubscription(
                token: token, live.subscriptionBody(resource: "users/bob@contoso.com/messages", path: "/plain"))
            let onPlain = try await live.call(
                "PATCH", "/subscriptions/\(plain)", token: token,
                json: .object([
                    "expirationDateTime": expiry, "encryptionCertificate": .string(Data(certificate.derRepresentation).base64EncodedString()),
                    "encryptionCertificateId": "enc-1",
                ]))
            #expect(onPlain.status == 400)
            #expect(onPlain.graphErrorMessage?.contains("includeResourceData") == true)
        }
    }
}
