public import Foundation
import Synchronization
import _CryptoExtras

/// Checks the `validationTokens` JWTs of a rich-notification POST (graph-protocol 5.4): an RS256
/// signature by a key of the authority's JWKS, `exp`/`nbf` with ``Policy/clockSkew``, `aud` = the
/// app's client id, an issuer of the configured tenant in the v1 or v2 form, and `appid`/`azp` =
/// Graph's change-notification publisher. Every token must pass; one failure refuses the POST.
public final class ValidationTokenValidator: Sendable {
    /// What a token must say.
    public struct Policy: Sendable {
        /// The Microsoft Graph change-notification publisher, in `appid` (v1) or `azp` (v2).
        public static let graphPublisherAppID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

        /// Accepted `aud` values: the app's client id.
        public var audiences: [String]
        /// `graph.tenant`: a GUID or a domain (then the authority's discovery supplies the GUID).
        public var tenant: String
        /// `https://login.microsoftonline.com` or the configured `authorityUrl` (no trailing slash).
        public var authority: String
        /// Allowed difference between Graph's clock and ours on `exp` and `nbf`. Default 20 s: Graph's
        /// tokens live an hour and arrive fresh, so NTP-synced clocks need no more, and a token half
        /// a minute past its `exp` is refused (the shared synthetic vector `expired` expects that).
        public var clockSkew: TimeInterval

        public init(audiences: [String], tenant: String, authority: String, clockSkew: TimeInterval = 20) {
            self.audiences = audiences
            self.tenant = tenant
            self.authority = authority.hasSuffix("/") ? String(authority.dropLast()) : authority
            self.clockSkew = clockSkew
        }

        /// The v1 issuer's host: `sts.windows.net` for the global and US Government clouds,
        /// `sts.chinacloudapi.cn` for the cloud operated by 21Vianet.
        var v1IssuerHost: String {
            let host = URLComponents(string: authority)?.host?.lowercased() ?? ""
            return host.hasSuffix("chinacloudapi.cn") || host.hasSuffix("microsoftonline.cn") ? "sts.chinacloudapi.cn" : "sts.windows.net"
        }

        /// `https://{v1 host}/{tid}/` (v1) and `{authority}/{tid}/v2.0` (v2), lowercased, for each tenant id.
        func acceptedIssuers(tenantIDs: [String]) -> Set<String> {
            Set(tenantIDs.flatMap { tid in ["https://\(v1IssuerHost)/\(tid)/", "\(authority)/\(tid)/v2.0"].map { $0.lowercased() } })
        }
    }

    /// The claims checked; `aud` may be one string or a list.
    struct Claims: Decodable {
        var aud: [String]
        var iss: String?
        var exp: Double?
        var nbf: Double?
        var appid: String?
        var azp: String?

        enum CodingKeys: String, CodingKey { case aud, iss, exp, nbf, appid, azp }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let single = try? container.decode(String.self, forKey: .aud) {
                aud = [single]
            } else {
                aud = try container.decodeIfPresent([String].self, forKey: .aud) ?? []
            }
            iss = try container.decodeIfPresent(String.self, forKey: .iss)
            exp = try container.decodeIfPresent(Double.self, forKey: .exp)
            nbf = try container.decodeIfPresent(Double.self, forKey: .nbf)
            appid = try container.decodeIfPresent(String.self, forKey: .appid)
            azp = try container.decodeIfPresent(String.self, forKey: .azp)
        }
    }

    public let policy: Policy
    let keys: SigningKeyCache
    let now: @Sendable () -> Date
    /// Tokens that passed every check, with their `exp`: Graph puts the same token on every POST
    /// of an hour, so a large batch costs one RS256 check per distinct token. Bounded.
    private let verified = Mutex<[String: Double]>([:])
    static let verifiedCacheLimit = 1024

    /// - Parameters:
    ///   - minimumRefetchInterval: the least time between two JWKS fetches for unknown `kid`s. Default 5 min.
    ///   - maximumKeyAge: keys are refetched after this long even when every `kid` is known. Default 24 h
    ///     (Entra rotates its keys about daily).
    ///   - now: the clock, for tests.
    public init(
        policy: Policy, keys source: any SigningKeySource, minimumRefetchInterval: TimeInterval = 300, maximumKeyAge: TimeInterval = 86_400,
        failureBackoff: TimeInterval = 5, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.policy = policy
        self.now = now
        self.keys = SigningKeyCache(
            source: source, minimumRefetchInterval: minimumRefetchInterval, maximumAge: maximumKeyAge, failureBackoff: failureBackoff, now: now)
    }

    /// Validates every token of one POST; throws for the first that fails. No tokens at all fails too:
    /// a POST with encrypted content must carry them.
    public func validate(_ tokens: [String]) async throws(RichNotificationError) {
        guard !tokens.isEmpty else { throw .missingValidationTokens() }
        for token in tokens {
            try await validate(token)
        }
    }

    func validate(_ token: String) async throws(RichNotificationError) {
        let time = now().timeIntervalSince1970
        if let exp = verified.withLock({ $0[token] }) {
            guard time <= exp + policy.clockSkew else {
                verified.withLock { _ = $0.removeValue(forKey: token) }
                throw .expired()
            }
            return
        }
        let jwt = try SignedJWT(token)
        // Only RS256: never `none`, never a symmetric algorithm keyed with the public key.
        guard jwt.header.alg == "RS256" else { throw .unsupportedAlgorithm(jwt.header.alg ?? "none") }
        guard let kid = jwt.header.kid, !kid.isEmpty else { throw .malformedToken("a validation token has no kid header") }
        let (key, discoveredTenant) = try await keys.key(for: kid)
        guard jwt.isSigned(by: key) else { throw .badTokenSignature() }
        let claims = try jwt.claims(Claims.self)
        try check(claims, discoveredTenant: discoveredTenant)
        if let exp = claims.exp { remember(token, until: exp, now: time) }
    }

    private func remember(_ token: String, until exp: Double, now time: Double) {
        verified.withLock { cache in
            if cache.count >= Self.verifiedCacheLimit {
                cache = cache.filter { time <= $0.value + policy.clockSkew }
                if cache.count >= Self.verifiedCacheLimit { cache.removeAll() }
            }
            cache[token] = exp
        }
    }

    /// How many verified tokens are cached (for tests).
    var cachedTokenCount: Int { verified.withLock { $0.count } }

    /// The claim checks of a token whose signature verified.
    func check(_ claims: Claims, discoveredTenant: String?) throws(RichNotificationError) {
        let time = now().timeIntervalSince1970
        guard let exp = claims.exp else { throw .malformedToken("a validation token has no exp") }
        guard time <= exp + policy.clockSkew else { throw .expired() }
        if let nbf = claims.nbf, time < nbf - policy.clockSkew { throw .notYetValid() }
        let audiences = Set(policy.audiences.map { $0.lowercased() })
        guard claims.aud.contains(where: { audiences.contains($0.lowercased()) }) else { throw .wrongAudience() }
        let issuer = claims.iss ?? ""
        let tenants = [policy.tenant] + (discoveredTenant.map { [$0] } ?? [])
        guard policy.acceptedIssuers(tenantIDs: tenants).contains(issuer.lowercased()) else { throw .wrongIssuer(issuer) }
        // v1 tokens name the publisher in appid, v2 in azp: whichever is there must be Graph's, and one must be.
        let publishers = [claims.appid, claims.azp].compactMap { $0 }
        guard !publishers.isEmpty, publishers.allSatisfy({ $0.lowercased() == Policy.graphPublisherAppID }) else { throw .wrongPublisher() }
    }
}
