import Crypto
import Foundation
import GraphClient
import Testing

/// `encryptedContent` decryption against the real fixture from Microsoft's .NET SDK tests
/// (../shared/graph-vectors/rich-notification-dotnet-core), and the ways it must refuse.
@Suite("rich content decryption", .enabled(if: vectorsPresent, "needs ../shared/graph-vectors/rich-notification-dotnet-core beside the checkout"))
struct RichContentDecryptionTests {
    static func key(id: String = "custom-id-for-testing") throws -> RichContentKey {
        try RichContentKey(
            id: id, certificatePEM: try String(contentsOfFile: vector("certificate.pem"), encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: vector("private-key.pem"), encoding: .utf8))
    }

    static func content(_ file: String = "encrypted-content.json", nested: Bool = false) throws -> EncryptedContent {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: vector(file)))) as? [String: Any])
        if nested { object = try #require(object["encryptedContent"] as? [String: Any]) }
        return EncryptedContent(
            data: try #require(object["data"] as? String), dataKey: try #require(object["dataKey"] as? String),
            dataSignature: try #require(object["dataSignature"] as? String),
            encryptionCertificateId: try #require(object["encryptionCertificateId"] as? String),
            encryptionCertificateThumbprint: object["encryptionCertificateThumbprint"] as? String)
    }

    static func rejection(_ body: () throws -> [UInt8]) -> String? {
        do {
            _ = try body()
            return nil
        } catch let error as RichNotificationError {
            return error.reason
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test("decrypts to the exact 1297 plaintext bytes of the fixture: a Teams chatMessage with body 'Hello World'")
    func decryptsTheFixture() throws {
        let key = try Self.key()
        #expect(key.thumbprint == "4B95353E086AD37196606ACF834A14532F03E6DB")
        let plaintext = try RichContentDecryptor(keys: [key]).decrypt(try Self.content())
        let expected = try Array(Data(contentsOf: URL(fileURLWithPath: vector("expected-plaintext.json"))))
        #expect(plaintext.count == 1297)
        #expect(plaintext == expected)
        let digest = SHA256.hash(data: plaintext).map { String(format: "%02x", $0) }.joined()
        #expect(digest == "e1a9e5a8030d2df677b075feebf1e02dca4080b36990cc4d1b0391c98d0b0930")
        let message = try #require(try JSONSerialization.jsonObject(with: Data(plaintext)) as? [String: Any])
        #expect(message["etag"] as? String == "1625126194597")
        #expect((message["body"] as? [String: Any])?["content"] as? String == "Hello World")
    }

    @Test("one flipped ciphertext bit fails the HMAC check before any decryption")
    func tamperedData() throws {
        let decryptor = RichContentDecryptor(keys: [try Self.key()])
        let tampered = try Self.content("negative-tampered-data.json", nested: true)
        #expect(Self.rejection { try decryptor.decrypt(tampered) } == "data_signature_mismatch")
    }

    @Test("a forged dataSignature is refused")
    func forgedSignature() throws {
        let decryptor = RichContentDecryptor(keys: [try Self.key()])
        var content = try Self.content()
        content.dataSignature = Data(repeating: 0, count: 32).base64EncodedString()
        #expect(Self.rejection { try decryptor.decrypt(content) } == "data_signature_mismatch")
    }

    @Test("an encryptionCertificateId that is not configured is refused, and so is a thumbprint of another certificate")
    func keySelection() throws {
        let content = try Self.content()
        #expect(Self.rejection { try RichContentDecryptor(keys: [try Self.key(id: "enc-2026")]).decrypt(content) } == "unknown_certificate_id")
        var otherCertificate = content
        otherCertificate.encryptionCertificateThumbprint = String(repeating: "AB", count: 20)
        #expect(Self.rejection { try RichContentDecryptor(keys: [try Self.key()]).decrypt(otherCertificate) } == "certificate_mismatch")
        // The thumbprint is optional, and compared without regard to case.
        var lowercase = content
        lowercase.encryptionCertificateThumbprint = content.encryptionCertificateThumbprint?.lowercased()
        #expect(try RichContentDecryptor(keys: [try Self.key()]).decrypt(lowercase).count == 1297)
    }

    @Test("a dataKey the private key cannot unwrap, and data that is not base64, are refused")
    func garbage() throws {
        let decryptor = RichContentDecryptor(keys: [try Self.key()])
        var content = try Self.content()
        content.dataKey = Data(repeating: 7, count: 512).base64EncodedString()
        #expect(Self.rejection { try decryptor.decrypt(content) } == "undecryptable_key")
        content = try Self.content()
        content.data = "not base64!"
        #expect(Self.rejection { try decryptor.decrypt(content) } == "malformed_content")
    }

    @Test("the certificate goes to Graph as base64 DER, the public part only")
    func certificateForGraph() throws {
        let key = try Self.key()
        let der = try #require(Data(base64Encoded: key.certificateBase64))
        #expect(Array(der) == key.certificateDER)
        #expect(der.first == 0x30)
        #expect(!key.certificateBase64.contains("PRIVATE"))
    }
}
