import Crypto
public import Foundation
import _CryptoExtras

/// An app-registration certificate (`keyCredentials`): its public key and thumbprints.
struct RegisteredCertificate: Sendable {
    let der: [UInt8]
    let publicKey: _RSA.Signing.PublicKey
    /// SHA-1 of the DER, raw bytes (what `x5t` carries, base64url-encoded).
    let sha1: [UInt8]
    /// SHA-256 of the DER, raw bytes (what `x5t#S256` carries).
    let sha256: [UInt8]

    init(pem: String) throws(CertificateError) {
        try self.init(der: try DER.pemBlock(pem, label: "CERTIFICATE"))
    }

    init(der: [UInt8]) throws(CertificateError) {
        self.der = der
        let spki = try Self.subjectPublicKeyInfo(der)
        do {
            publicKey = try _RSA.Signing.PublicKey(derRepresentation: spki)
        } catch {
            throw .malformed("the certificate's key is not an RSA key of 2048 bits or more (\(error))")
        }
        sha1 = Array(Insecure.SHA1.hash(data: der))
        sha256 = Array(SHA256.hash(data: der))
    }

    /// Certificate → tbsCertificate → [version], serial, signature, issuer, validity, subject, SPKI.
    static func subjectPublicKeyInfo(_ der: [UInt8]) throws(CertificateError) -> ArraySlice<UInt8> {
        guard let certificate = try DER.parse(der[...]).first, certificate.tag == 0x30,
            let tbs = try certificate.children().first, tbs.tag == 0x30
        else { throw .malformed("not an X.509 certificate") }
        let fields = try tbs.children()
        let offset = fields.first?.tag == 0xA0 ? 1 : 0
        guard fields.count > offset + 5, fields[offset + 5].tag == 0x30 else { throw .malformed("no subjectPublicKeyInfo in the certificate") }
        return fields[offset + 5].encoded
    }
}

/// A throw-away RSA key and a self-signed X.509 certificate for it, made in memory: register
/// ``certificatePEM`` with the simulator (``GraphSimulator/Configuration/certificatePEMs``) and
/// sign client assertions with ``privateKeyPEM``.
public struct SelfSignedCertificate: Sendable {
    /// The RSA private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    public let privateKeyPEM: String
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    public let certificatePEM: String
    /// The certificate's DER bytes.
    public let derRepresentation: [UInt8]
    /// Hex SHA-1 thumbprint, uppercase (what Entra shows as "Thumbprint").
    public let sha1Thumbprint: String
    /// Hex SHA-256 thumbprint, uppercase.
    public let sha256Thumbprint: String
    /// base64url SHA-1 thumbprint: the `x5t` header value.
    public let x5t: String
    /// base64url SHA-256 thumbprint: the `x5t#S256` header value.
    public let x5tS256: String

    /// Generates a new RSA key (2048 bits by default) and certifies it.
    public static func generate(commonName: String = "graph-simulator-client", keyBits: Int = 2048, validFor: TimeInterval = 86_400 * 365)
        throws -> SelfSignedCertificate
    {
        let key = try _RSA.Signing.PrivateKey(keySize: .init(bitCount: keyBits))
        return try SelfSignedCertificate(key: key, commonName: commonName, notBefore: Date().addingTimeInterval(-300), validFor: validFor)
    }

    /// Certifies an existing RSA private key given as PEM (PKCS#1 or PKCS#8).
    public init(privateKeyPEM: String, commonName: String = "graph-simulator-client", validFor: TimeInterval = 86_400 * 365) throws {
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        try self.init(key: key, commonName: commonName, notBefore: Date().addingTimeInterval(-300), validFor: validFor)
    }

    init(key: _RSA.Signing.PrivateKey, commonName: String, notBefore: Date, validFor: TimeInterval) throws {
        let sha256WithRSA = DER.sequence(DER.objectIdentifier([1, 2, 840, 113_549, 1, 1, 11]), DER.null)
        let name = DER.sequence(DER.set(DER.sequence(DER.objectIdentifier([2, 5, 4, 3]), DER.utf8String(commonName))))
        var serial = Identifiers.randomBytes(16)
        serial[0] &= 0x7F
        serial[0] |= 0x01
        let tbs = DER.sequence(
            DER.explicit(0, DER.integer([2])),
            DER.integer(serial),
            sha256WithRSA,
            name,
            DER.sequence(DER.time(notBefore), DER.time(notBefore.addingTimeInterval(validFor))),
            name,
            Array(key.publicKey.derRepresentation)
        )
        let signature = try key.signature(for: tbs, padding: .insecurePKCS1v1_5)
        let der = DER.sequence(tbs, sha256WithRSA, DER.bitString(Array(signature.rawRepresentation)))
        privateKeyPEM = key.pkcs8PEMRepresentation
        certificatePEM = DER.pem(der, label: "CERTIFICATE")
        derRepresentation = der
        let sha1 = Array(Insecure.SHA1.hash(data: der))
        let sha256 = Array(SHA256.hash(data: der))
        sha1Thumbprint = Identifiers.hex(sha1)
        sha256Thumbprint = Identifiers.hex(sha256)
        x5t = Base64URL.encode(sha1)
        x5tS256 = Base64URL.encode(sha256)
    }
}
