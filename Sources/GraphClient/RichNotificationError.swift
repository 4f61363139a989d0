/// Why a rich notification (`validationTokens` plus `encryptedContent`, graph-protocol 5) was
/// refused. ``reason`` is a short, bounded word fit for a metric label; ``description`` says what
/// was wrong without quoting a token, a key or the content.
public struct RichNotificationError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable {
        case missingValidationTokens = "missing_validation_tokens"
        case malformedToken = "malformed_token"
        case unsupportedAlgorithm = "unsupported_algorithm"
        case unknownKey = "unknown_key"
        case signingKeysUnavailable = "signing_keys_unavailable"
        case badTokenSignature = "bad_token_signature"
        case expired
        case notYetValid = "not_yet_valid"
        case wrongAudience = "wrong_audience"
        case wrongIssuer = "wrong_issuer"
        case wrongPublisher = "wrong_publisher"
        case malformedContent = "malformed_content"
        case unknownCertificate = "unknown_certificate_id"
        case certificateMismatch = "certificate_mismatch"
        case undecryptableKey = "undecryptable_key"
        case dataSignatureMismatch = "data_signature_mismatch"
        case undecryptableData = "undecryptable_data"
        case notJSON = "not_json"
    }

    private let code: Code
    /// What exactly was wrong, for the log line.
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The authority's signing keys could not be fetched: nothing was proven about the item.
    public var isSigningKeyOutage: Bool { code == .signingKeysUnavailable }

    /// The metric label (`graph_bridge_rich_notifications_rejected_total{reason}`).
    public var reason: String { code.rawValue }

    public var description: String { "\(code.rawValue): \(detail)" }

    // MARK: Validation tokens

    public static func missingValidationTokens() -> Self {
        Self(.missingValidationTokens, "the POST carries encrypted content but no validationTokens")
    }
    public static func malformedToken(_ detail: String) -> Self { Self(.malformedToken, detail) }
    public static func unsupportedAlgorithm(_ alg: String) -> Self {
        Self(.unsupportedAlgorithm, "a validation token is signed with '\(alg.prefix(16))'; only RS256 is accepted")
    }
    public static func unknownKey(_ kid: String) -> Self {
        Self(.unknownKey, "no signing key '\(kid.prefix(80))' in the authority's JWKS, even after refetching it")
    }
    public static func signingKeysUnavailable(_ detail: String) -> Self { Self(.signingKeysUnavailable, detail) }
    public static func badTokenSignature() -> Self { Self(.badTokenSignature, "a validation token's RS256 signature does not verify") }
    public static func expired() -> Self { Self(.expired, "a validation token has expired (exp)") }
    public static func notYetValid() -> Self { Self(.notYetValid, "a validation token is not valid yet (nbf)") }
    public static func wrongAudience() -> Self { Self(.wrongAudience, "a validation token's aud is not this app's client id") }
    public static func wrongIssuer(_ issuer: String) -> Self {
        Self(.wrongIssuer, "a validation token's issuer '\(issuer.prefix(120))' is not the configured tenant's (v1 or v2 form)")
    }
    public static func wrongPublisher() -> Self {
        Self(.wrongPublisher, "a validation token's appid/azp is not Graph's change-notification publisher")
    }

    // MARK: Encrypted content

    public static func malformedContent(_ detail: String) -> Self { Self(.malformedContent, detail) }
    public static func unknownCertificate(_ id: String) -> Self {
        Self(.unknownCertificate, "encryptionCertificateId '\(id.prefix(128))' is not the id of a configured encryption key")
    }
    public static func certificateMismatch() -> Self {
        Self(.certificateMismatch, "encryptionCertificateThumbprint is not the SHA-1 thumbprint of the configured certificate with that id")
    }
    public static func undecryptableKey() -> Self {
        Self(.undecryptableKey, "dataKey does not decrypt (RSA-OAEP-SHA1) to a 32-byte key with the configured private key")
    }
    public static func dataSignatureMismatch() -> Self {
        Self(.dataSignatureMismatch, "dataSignature is not the HMAC-SHA256 of data: tampered or corrupted")
    }
    public static func undecryptableData() -> Self { Self(.undecryptableData, "data does not decrypt (AES-256-CBC, PKCS#7)") }
    public static func notJSON(_ detail: String) -> Self { Self(.notJSON, "the decrypted content is not JSON: \(detail)") }
}
