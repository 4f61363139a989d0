import Foundation
import _CryptoExtras

/// A compact JWS (`header.payload.signature`), split and decoded but not yet trusted: its claims
/// mean nothing until ``isSigned(by:)`` says the signature verifies.
struct SignedJWT: Sendable {
    struct Header: Decodable, Sendable {
        var alg: String?
        var kid: String?
    }

    let header: Header
    /// The payload's JSON bytes.
    let payload: [UInt8]
    /// `base64url(header) + "." + base64url(payload)`, what the signature covers.
    let signingInput: [UInt8]
    let signature: [UInt8]

    init(_ text: String) throws(RichNotificationError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformedToken("a validation token is not a compact JWS (three dot-separated parts)") }
        guard let headerBytes = Base64URL.decode(parts[0]), let payload = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2])
        else { throw .malformedToken("a validation token part is not base64url") }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes)) else {
            throw .malformedToken("a validation token's header is not a JSON object")
        }
        self.header = header
        self.payload = payload
        self.signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        self.signature = signature
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over ``signingInput``.
    func isSigned(by key: _RSA.Signing.PublicKey) -> Bool {
        key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: signingInput, padding: .insecurePKCS1v1_5)
    }

    func claims<Claims: Decodable>(_ type: Claims.Type) throws(RichNotificationError) -> Claims {
        do {
            return try JSONDecoder().decode(type, from: Data(payload))
        } catch {
            throw .malformedToken("a validation token's claims do not have the expected types")
        }
    }
}
