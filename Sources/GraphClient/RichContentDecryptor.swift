import Crypto
import Foundation
import _CryptoExtras

/// One configured `encryption: { certificate, key, id }`: the key pair Graph encrypts rich content for.
public struct RichContentKey: Sendable {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The `encryptionCertificateId` sent with the subscription.
    public let id: String
    /// The certificate's DER bytes.
    public let certificateDER: [UInt8]
    /// The private key's DER. `_RSA.Encryption.PrivateKey` is not `Sendable`, so the key is kept as
    /// bytes and rebuilt for each item (parsing is microseconds next to the RSA decryption).
    let privateKeyDER: Data
    /// SHA-1 of the certificate's DER: Graph's `encryptionCertificateThumbprint`.
    let thumbprintSHA1: [UInt8]

    /// Reads a PEM certificate and its unencrypted PEM private key (PKCS#1 or PKCS#8, RSA 2048 to 4096 bits).
    public init(id: String, certificatePEM: String, privateKeyPEM: String) throws {
        guard let der = PEM.firstBlock(certificatePEM, label: "CERTIFICATE") else {
            throw LoadError(description: "no CERTIFICATE block in the certificate file")
        }
        do {
            privateKeyDER = try _RSA.Encryption.PrivateKey(pemRepresentation: privateKeyPEM).derRepresentation
        } catch {
            throw LoadError(description: "the key file is not an unencrypted RSA private key in PEM (2048 bits or more): \(error)")
        }
        self.id = id
        certificateDER = Array(der)
        thumbprintSHA1 = Array(Insecure.SHA1.hash(data: der))
    }

    /// What `encryptionCertificate` carries when the subscription is created: base64 of the DER.
    public var certificateBase64: String { Data(certificateDER).base64EncodedString() }

    /// Hex SHA-1 thumbprint, uppercase (as Entra and Graph show it).
    public var thumbprint: String { thumbprintSHA1.map { String(format: "%02X", $0) }.joined() }
}

/// Decrypts `encryptedContent` exactly as graph-protocol 5.3 says: pick the key by
/// `encryptionCertificateId` (and check the thumbprint), unwrap the 32-byte key with RSA-OAEP-SHA1,
/// check the HMAC-SHA256 of the ciphertext in constant time before touching it, then AES-256-CBC
/// with IV = the key's first 16 bytes and PKCS#7 padding.
public struct RichContentDecryptor: Sendable {
    let keys: [String: RichContentKey]

    /// Several keys (one per id) let old subscriptions keep working while the certificate rotates.
    public init(keys: [RichContentKey]) {
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The decrypted bytes (the resource's JSON).
    public func decrypt(_ content: EncryptedContent) throws(RichNotificationError) -> [UInt8] {
        guard let key = keys[content.encryptionCertificateId] else { throw .unknownCertificate(content.encryptionCertificateId) }
        if let thumbprint = content.encryptionCertificateThumbprint, !thumbprint.isEmpty {
            guard thumbprint.uppercased() == key.thumbprint else { throw .certificateMismatch() }
        }
        guard let wrapped = Data(base64Encoded: content.dataKey), let ciphertext = Data(base64Encoded: content.data),
            let signature = Data(base64Encoded: content.dataSignature)
        else { throw .malformedContent("data, dataKey or dataSignature is not base64") }

        let keyBytes: Data
        do {
            keyBytes = try _RSA.Encryption.PrivateKey(derRepresentation: key.privateKeyDER).decrypt(wrapped, padding: .PKCS1_OAEP)
        } catch {
            throw .undecryptableKey()
        }
        guard keyBytes.count == 32 else { throw .undecryptableKey() }
        let symmetricKey = SymmetricKey(data: keyBytes)
        // HMAC's own comparison is constant-time; nothing is decrypted before it passes.
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: ciphertext, using: symmetricKey) else {
            throw .dataSignatureMismatch()
        }
        do {
            let iv = try AES._CBC.IV(ivBytes: keyBytes.prefix(16))
            return Array(try AES._CBC.decrypt(ciphertext, using: symmetricKey, iv: iv))
        } catch {
            throw .undecryptableData()
        }
    }
}
