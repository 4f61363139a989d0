import Foundation
public import _CryptoExtras

/// The signing keys a JWKS document publishes (`{"keys": [{"kty": "RSA", "kid", "n", "e"}]}`), by `kid`.
/// Keys that are not RSA signature keys, or that swift-crypto refuses (under 2048 bits), are skipped.
public struct JSONWebKeySet: Sendable {
    public let keys: [String: _RSA.Signing.PublicKey]

    public init(keys: [String: _RSA.Signing.PublicKey]) {
        self.keys = keys
    }

    public init(json: [UInt8]) throws {
        let document = try JSONDecoder().decode(Document.self, from: Data(json))
        var keys: [String: _RSA.Signing.PublicKey] = [:]
        for key in document.keys where key.kty == "RSA" && (key.use ?? "sig") == "sig" {
            guard let kid = key.kid, let n = key.n.flatMap(Base64URL.decode), let e = key.e.flatMap(Base64URL.decode),
                let publicKey = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { continue }
            keys[kid] = publicKey
        }
        self.keys = keys
    }
}

/// The JWKS fields read (RFC 7517).
private struct Document: Decodable {
    struct Key: Decodable {
        var kty: String?
        var use: String?
        var kid: String?
        var n: String?
        var e: String?
    }
    var keys: [Key]
}
