import _CryptoExtras
import Crypto
public import Foundation

/// A `private_key_jwt` client assertion: a JWT signed with the app's certificate key, PS256 with
/// the certificate's SHA-256 thumbprint in `x5t#S256` (what MSAL sends to Entra ID).
public struct CertificateAssertion: Sendable {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    let privateKey: _RSA.Signing.PrivateKey
    /// base64url(SHA-256(DER certificate)).
    public let thumbprintSHA256: String

    /// Reads a PEM certificate and its PEM private key (PKCS#1 or PKCS#8, unencrypted).
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        guard let der = PEM.firstBlock(certificatePEM, label: "CERTIFICATE") else {
            throw LoadError(description: "no CERTIFICATE block in the certificate file")
        }
        do {
            privateKey = try _RSA.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        } catch {
            throw LoadError(description: "the key file is not an unencrypted RSA private key in PEM: \(error)")
        }
        thumbprintSHA256 = Base64URL.encode(Array(SHA256.hash(data: der)))
    }

    /// A fresh assertion for `clientID`, addressed to `audience` (the token endpoint), valid 10 minutes.
    public func make(clientID: String, audience: String, now: Date = Date()) throws -> String {
        let header: [String: String] = ["alg": "PS256", "typ": "JWT", "x5t#S256": thumbprintSHA256]
        let issuedAt = Int(now.timeIntervalSince1970)
        let claims: [String: Any] = [
            "aud": audience, "iss": clientID, "sub": clientID, "jti": UUID().uuidString.lowercased(),
            "nbf": issuedAt, "iat": issuedAt, "exp": issuedAt + 600,
        ]
        let headerPart = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])))
        let claimsPart = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])))
        let signingInput = Data("\(headerPart).\(claimsPart)".utf8)
        let signature = try privateKey.signature(for: signingInput, padding: .PSS)
        return "\(headerPart).\(claimsPart).\(Base64URL.encode(Array(signature.rawRepresentation)))"
    }
}
