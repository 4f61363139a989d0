import Crypto
import Foundation
import _CryptoExtras

/// A compact JWS (`header.payload.signature`), decoded but not yet verified.
struct CompactJWT {
    let header: JSONValue
    let claims: JSONValue
    /// `base64url(header) + "." + base64url(payload)`, the bytes the signature covers.
    let signingInput: [UInt8]
    let signature: [UInt8]

    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]), let claimBytes = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]), let header = JSONValue.parse(headerBytes), let claims = JSONValue.parse(claimBytes),
            case .object = header, case .object = claims
        else { return nil }
        self.header = header
        self.claims = claims
        self.signingInput = Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8)
        self.signature = signature
    }

    /// Whether the signature verifies with `key` under `alg` (`RS256` or `PS256`; anything else fails).
    func verifies(with key: _RSA.Signing.PublicKey, alg: String) -> Bool {
        let padding: _RSA.Signing.Padding
        switch alg {
        case "RS256": padding = .insecurePKCS1v1_5
        case "PS256": padding = .PSS
        default: return false
        }
        return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: signingInput, padding: padding)
    }

    /// A numeric date claim (`exp`, `nbf`, `iat`) as a `Date`.
    func date(_ claim: String) -> Date? {
        switch claims[claim] {
        case .int(let seconds): return Date(timeIntervalSince1970: Double(seconds))
        case .double(let seconds): return Date(timeIntervalSince1970: seconds)
        default: return nil
        }
    }

    /// Signs `claims` under `header` (which must name `alg` RS256 or PS256) with `key`.
    static func sign(header: JSONValue, claims: JSONValue, key: _RSA.Signing.PrivateKey) throws -> String {
        let input = Base64URL.encode(header.bytes) + "." + Base64URL.encode(claims.bytes)
        let padding: _RSA.Signing.Padding = header["alg"]?.stringValue == "PS256" ? .PSS : .insecurePKCS1v1_5
        let signature = try key.signature(for: Array(input.utf8), padding: padding)
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }
}
