public import Foundation

/// What a `validationTokens` JWT should say (graph-protocol 5.4). The defaults give a token a
/// correct validator accepts; change one field for a negative case.
public struct ValidationTokenOptions: Sendable {
    public enum Version: Sendable {
        /// `iss` = `https://sts.windows.net/{tid}/`, publisher in `appid`, `ver` 1.0.
        case v1
        /// `iss` = `https://login.microsoftonline.com/{tid}/v2.0`, publisher in `azp`, `ver` 2.0.
        case v2
    }

    public var version: Version = .v1
    /// `aud`; nil: the simulator's client id.
    public var audience: String? = nil
    /// `tid` and the tenant in `iss`; nil: the simulator's tenant.
    public var tenantID: String? = nil
    /// `appid` (v1) or `azp` (v2): Graph's change-notification publisher unless changed.
    public var publisherAppID: String = "0bf30f3b-4a52-48df-9a82-234910c4a086"
    /// `nbf` and `iat`; nil: now.
    public var notBefore: Date? = nil
    /// `exp` - `nbf`. Default 1 h.
    public var lifetime: TimeInterval = 3600
    /// The `kid` header; nil: the signing key's real id (set another to test "unknown kid").
    public var keyID: String? = nil
    /// Claims added (or replacing) at the end.
    public var extraClaims: [JSONValue.Member] = []

    public init(version: Version = .v1) {
        self.version = version
    }
}

extension GraphSimulator {
    /// The publisher app id Graph's notifications carry in `appid`/`azp`.
    public static let changeNotificationPublisherID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

    /// Signs a Graph-style `validationTokens` JWT (RS256, `kid`) with the key the JWKS at ``jwksURL`` publishes.
    /// `iss` uses the real Microsoft host names, as Graph's tokens do.
    public func makeValidationToken(_ options: ValidationTokenOptions = .init()) throws -> String {
        let tenant = options.tenantID ?? configuration.tenantID
        let notBefore = Int((options.notBefore ?? Date()).timeIntervalSince1970)
        var claims: JSONValue = .object([
            "aud": .string(options.audience ?? configuration.clientID),
            "iss": .string(options.version == .v1 ? "https://sts.windows.net/\(tenant)/" : "https://login.microsoftonline.com/\(tenant)/v2.0"),
            "iat": .int(notBefore),
            "nbf": .int(notBefore),
            "exp": .int(notBefore + Int(options.lifetime)),
            "aio": .string("E2Z" + Identifiers.random(bytes: 24)),
        ])
        switch options.version {
        case .v1:
            claims = claims.setting("appid", .string(options.publisherAppID)).setting("appidacr", "2")
                .setting("idp", .string("https://sts.windows.net/\(tenant)/"))
        case .v2:
            claims = claims.setting("azp", .string(options.publisherAppID)).setting("azpacr", "2")
        }
        claims = claims.setting("tid", .string(tenant)).setting("uti", .string(Identifiers.random(bytes: 16)))
            .setting("ver", options.version == .v1 ? "1.0" : "2.0")
        for member in options.extraClaims { claims = claims.setting(member.key, member.value) }
        let header: JSONValue = .object(["typ": "JWT", "alg": "RS256", "kid": .string(options.keyID ?? configuration.signingKeyID)])
        return try CompactJWT.sign(header: header, claims: claims, key: signingKey)
    }
}
