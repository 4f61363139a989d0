import Foundation
@testable import GraphClient
import Synchronization
import Testing
import _CryptoExtras

/// `validationTokens` checks (graph-protocol 5.4), without a network: keys come from a scripted
/// source and time from a settable clock.
@Suite("validation tokens")
struct ValidationTokenTests {
    static let clientID = "8e460676-ae3f-4b1e-8790-ee0fb5d6148f"
    static let tenantID = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
    static let authority = "https://login.microsoftonline.com"

    static func policy() -> ValidationTokenValidator.Policy {
        .init(audiences: [clientID], tenant: tenantID, authority: authority)
    }

    static func reason(_ validator: ValidationTokenValidator, _ tokens: [String]) async -> String? {
        do {
            try await validator.validate(tokens)
            return nil
        } catch {
            return error.reason
        }
    }

    // MARK: Tokens made here

    @Test("a Graph-shaped v1 token passes; each wrong claim, a bad signature and alg none fail with their reason")
    func claims() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: ScriptedKeys([signer.published()]), now: clock.read)
        let now = 1_800_000_000
        #expect(await Self.reason(validator, [try signer.token(now: now)]) == nil)
        #expect(await Self.reason(validator, [try signer.token(now: now, v2: true)]) == nil)
        #expect(
            await Self.reason(validator, [try signer.token(now: now, changes: ["aud": "00000000-0000-0000-0000-000000000001"])]) == "wrong_audience")
        #expect(
            await Self.reason(validator, [try signer.token(now: now, changes: ["appid": "00000000-0000-0000-0000-000000000003"])])
                == "wrong_publisher")
        #expect(
            await Self.reason(validator, [try signer.token(now: now, v2: true, changes: ["azp": "00000000-0000-0000-0000-000000000003"])])
                == "wrong_publisher")
        #expect(await Self.reason(validator, [try signer.token(now: now, removing: ["appid"])]) == "wrong_publisher", "a publisher claim is required")
        #expect(
            await Self.reason(
                validator, [try signer.token(now: now, changes: ["iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000002/"])])
                == "wrong_issuer")
        #expect(
            await Self.reason(validator, [try signer.token(now: now, changes: ["iss": "https://evil.example/\(Self.tenantID)/v2.0"])])
                == "wrong_issuer")
        #expect(await Self.reason(validator, [try signer.token(now: now - 7200)]) == "expired", "exp an hour ago")
        #expect(await Self.reason(validator, [try signer.token(now: now + 3600)]) == "not_yet_valid")
        #expect(await Self.reason(validator, [try signer.token(now: now, tamper: true)]) == "bad_token_signature")
        #expect(await Self.reason(validator, [try signer.token(now: now, alg: "none")]) == "unsupported_algorithm")
        #expect(await Self.reason(validator, [try signer.token(now: now, alg: "HS256")]) == "unsupported_algorithm")
        #expect(await Self.reason(validator, ["not.a-token"]) == "malformed_token")
        #expect(await Self.reason(validator, []) == "missing_validation_tokens")
        // One bad token among good ones refuses the POST.
        #expect(await Self.reason(validator, [try signer.token(now: now), try signer.token(now: now, changes: ["aud": "x"])]) == "wrong_audience")
    }

    @Test("a verified token is cached until its exp: one check per distinct token, refused once expired")
    func cachedUntilExpiry() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: ScriptedKeys([signer.published()]), now: clock.read)
        let token = try signer.token(now: 1_800_000_000)
        #expect(await Self.reason(validator, Array(repeating: token, count: 50)) == nil)
        #expect(validator.cachedTokenCount == 1)
        // A failing token is never cached.
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000, changes: ["aud": "x"])]) == "wrong_audience")
        #expect(validator.cachedTokenCount == 1)
        clock.advance(by: 3600 + 15)  // within the skew of its exp
        #expect(await Self.reason(validator, [token]) == nil)
        clock.advance(by: 10)
        #expect(await Self.reason(validator, [token]) == "expired")
        #expect(validator.cachedTokenCount == 0)
    }

    @Test("national clouds: v1 tokens of the cloud operated by 21Vianet come from sts.chinacloudapi.cn, US Government's from sts.windows.net")
    func nationalCloudIssuers() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        func reason(authority: String, issuer: String) async throws -> String? {
            let validator = ValidationTokenValidator(
                policy: .init(audiences: [Self.clientID], tenant: Self.tenantID, authority: authority), keys: ScriptedKeys([signer.published()]),
                now: clock.read)
            return await Self.reason(validator, [try signer.token(now: 1_800_000_000, changes: ["iss": issuer])])
        }
        #expect(try await reason(authority: "https://login.chinacloudapi.cn", issuer: "https://sts.chinacloudapi.cn/\(Self.tenantID)/") == nil)
        #expect(try await reason(authority: "https://login.chinacloudapi.cn", issuer: "https://sts.windows.net/\(Self.tenantID)/") == "wrong_issuer")
        #expect(try await reason(authority: "https://login.chinacloudapi.cn", issuer: "https://login.chinacloudapi.cn/\(Self.tenantID)/v2.0") == nil)
        #expect(try await reason(authority: "https://login.microsoftonline.us", issuer: "https://sts.windows.net/\(Self.tenantID)/") == nil)
        #expect(try await reason(authority: "https://login.microsoftonline.us", issuer: "https://login.microsoftonline.us/\(Self.tenantID)/v2.0") == nil)
        #expect(try await reason(authority: "https://login.microsoftonline.us", issuer: "https://sts.chinacloudapi.cn/\(Self.tenantID)/") == "wrong_issuer")
    }

    @Test("exp and nbf allow 20 seconds of clock skew, not more")
    func skew() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: ScriptedKeys([signer.published()]), now: clock.read)
        // Tokens live 3600 s from `now:`: these expired 15 s and 25 s ago.
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000 - 3615)]) == nil)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000 - 3625)]) == "expired")
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000 + 15)]) == nil)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000 + 25)]) == "not_yet_valid")
    }

    @Test("an unknown kid refetches the keys once; within the minimum interval another unknown kid does not")
    func refetch() async throws {
        let old = try TokenSigner(kid: "old")
        let rotated = try TokenSigner(kid: "rotated")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let source = ScriptedKeys([old.published(), old.published() + rotated.published()])
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: source, minimumRefetchInterval: 300, now: clock.read)
        let now = 1_800_000_000
        #expect(await Self.reason(validator, [try old.token(now: now)]) == nil)
        #expect(source.fetches == 1)
        #expect(await Self.reason(validator, [try old.token(now: now)]) == nil)
        #expect(source.fetches == 1, "known kid: served from the cache")

        // Graph rotated its key within the minimum interval: refused without a fetch (no hammering)...
        clock.advance(by: 60)
        #expect(await Self.reason(validator, [try rotated.token(now: now)]) == "unknown_key")
        #expect(source.fetches == 1)
        // ...and after it, the unknown kid makes one refetch that finds the key.
        clock.advance(by: 300)
        #expect(await Self.reason(validator, [try rotated.token(now: now)]) == nil)
        #expect(source.fetches == 2)
        #expect(await Self.reason(validator, [try old.token(now: now)]) == nil)
        // A kid that no fetch knows stays unknown.
        clock.advance(by: 301)
        #expect(await Self.reason(validator, [try TokenSigner(kid: "forged").token(now: now)]) == "unknown_key")
        #expect(source.fetches == 3)
    }

    @Test("keys are refetched after a day even when every kid is known")
    func maximumAge() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let source = ScriptedKeys([signer.published()])
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: source, now: clock.read)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000)]) == nil)
        clock.advance(by: 86_400)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000 + 86_400)]) == nil)
        #expect(source.fetches == 2)
    }

    @Test("keys that cannot be fetched fail as signing_keys_unavailable, and the next try waits for the backoff")
    func unavailable() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let source = ScriptedKeys([signer.published()], failFirst: 1)
        let validator = ValidationTokenValidator(policy: Self.policy(), keys: source, failureBackoff: 5, now: clock.read)
        let token = try signer.token(now: 1_800_000_000)
        #expect(await Self.reason(validator, [token]) == "signing_keys_unavailable")
        #expect(await Self.reason(validator, [token]) == "signing_keys_unavailable")
        #expect(source.fetches == 1, "within the backoff: no second fetch")
        clock.advance(by: 5)
        #expect(await Self.reason(validator, [token]) == nil)
        #expect(source.fetches == 2)
    }

    @Test("graph.tenant given as a domain: the issuer's tenant comes from the authority's discovery")
    func domainTenant() async throws {
        let signer = try TokenSigner(kid: "k1")
        let clock = TestClock(Date(timeIntervalSince1970: 1_800_000_000))
        let policy = ValidationTokenValidator.Policy(audiences: [Self.clientID], tenant: "contoso.onmicrosoft.com", authority: Self.authority)
        let withoutDiscovery = ValidationTokenValidator(policy: policy, keys: ScriptedKeys([signer.published()]), now: clock.read)
        #expect(await Self.reason(withoutDiscovery, [try signer.token(now: 1_800_000_000)]) == "wrong_issuer")
        let discovered = PublishedSigningKeys(keys: signer.published().keys, tenantID: Self.tenantID)
        let validator = ValidationTokenValidator(policy: policy, keys: ScriptedKeys([discovered]), now: clock.read)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000)]) == nil)
        #expect(await Self.reason(validator, [try signer.token(now: 1_800_000_000, v2: true)]) == nil)
    }

    // MARK: The shared synthetic vectors

    @Test(
        "the 11 synthetic vectors of ../shared/graph-vectors/validation-token-synthetic",
        .enabled(if: syntheticTokensPresent, "needs ../shared/graph-vectors/validation-token-synthetic beside the checkout"))
    func syntheticVectors() async throws {
        let jwks = try Data(contentsOf: URL(fileURLWithPath: syntheticTokens("jwks.json")))
        let file = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: syntheticTokens("tokens.json")))) as? [String: Any])
        let evaluation = try #require(file["evaluation_time_unix"] as? Double)
        let appIDs = try #require(file["expected_app_ids"] as? [String])
        let tenantID = try #require((file["expected_tenant_ids"] as? [String])?.first)
        let cases = try #require(file["cases"] as? [[String: Any]])
        #expect(cases.count == 11)
        let source = ScriptedKeys([PublishedSigningKeys(keys: try JSONWebKeySet(json: Array(jwks)))])
        let validator = ValidationTokenValidator(
            policy: .init(audiences: appIDs, tenant: tenantID, authority: Self.authority), keys: source,
            now: { Date(timeIntervalSince1970: evaluation) })
        for vector in cases {
            let name = try #require(vector["name"] as? String)
            let token = try #require(vector["token"] as? String)
            let valid = try #require(vector["expect_valid"] as? Bool)
            let reason = await Self.reason(validator, [token])
            #expect((reason == nil) == valid, "\(name): \(reason ?? "accepted")")
        }
    }
}

let syntheticTokensDirectory = URL(fileURLWithPath: vectorDirectory).deletingLastPathComponent().appendingPathComponent("validation-token-synthetic")
    .path
let syntheticTokensPresent = FileManager.default.fileExists(atPath: syntheticTokensDirectory + "/tokens.json")
func syntheticTokens(_ name: String) -> String { syntheticTokensDirectory + "/" + name }

/// An RS256 signing key and Graph-shaped validation tokens signed with it.
struct TokenSigner {
    let kid: String
    let key: _RSA.Signing.PrivateKey

    init(kid: String) throws {
        self.kid = kid
        key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
    }

    func published() -> PublishedSigningKeys {
        PublishedSigningKeys(keys: JSONWebKeySet(keys: [kid: key.publicKey]))
    }

    /// A token valid from `now` for an hour, v1 (appid, sts.windows.net) or v2 (azp, login.microsoftonline.com).
    func token(now: Int, v2: Bool = false, changes: [String: Any] = [:], removing: [String] = [], alg: String = "RS256", tamper: Bool = false) throws
        -> String
    {
        let tenant = ValidationTokenTests.tenantID
        var claims: [String: Any] = [
            "aud": ValidationTokenTests.clientID, "iat": now, "nbf": now, "exp": now + 3600, "tid": tenant,
            "iss": v2 ? "https://login.microsoftonline.com/\(tenant)/v2.0" : "https://sts.windows.net/\(tenant)/",
            v2 ? "azp" : "appid": "0bf30f3b-4a52-48df-9a82-234910c4a086", "ver": v2 ? "2.0" : "1.0",
        ]
        claims.merge(changes) { $1 }
        for name in removing { claims[name] = nil }
        let header = try JSONSerialization.data(withJSONObject: ["typ": "JWT", "alg": alg, "kid": kid])
        let input = Self.base64URL(header) + "." + Self.base64URL(try JSONSerialization.data(withJSONObject: claims))
        var signature = Array(try key.signature(for: Array(input.utf8), padding: .insecurePKCS1v1_5).rawRepresentation)
        if tamper { signature[0] ^= 0x01 }
        return input + "." + (alg == "none" ? "" : Self.base64URL(Data(signature)))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
            of: "=", with: "")
    }
}

/// Hands out key sets in order (the last one again once the list is used up) and counts fetches.
final class ScriptedKeys: SigningKeySource {
    private let state: Mutex<(sets: [PublishedSigningKeys], fetches: Int, failuresLeft: Int)>

    init(_ sets: [PublishedSigningKeys], failFirst: Int = 0) {
        state = Mutex((sets, 0, failFirst))
    }

    var fetches: Int { state.withLock { $0.fetches } }

    struct Unreachable: Error {}

    func fetchSigningKeys() async throws -> PublishedSigningKeys {
        try state.withLock { state in
            state.fetches += 1
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                throw Unreachable()
            }
            let index = min(state.fetches - 1, state.sets.count - 1)
            return state.sets[index]
        }
    }
}

extension PublishedSigningKeys {
    static func + (lhs: PublishedSigningKeys, rhs: PublishedSigningKeys) -> PublishedSigningKeys {
        PublishedSigningKeys(keys: JSONWebKeySet(keys: lhs.keys.keys.merging(rhs.keys.keys) { $1 }), tenantID: lhs.tenantID ?? rhs.tenantID)
    }
}

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let now: Mutex<Date>
    init(_ start: Date) { now = Mutex(start) }
    var read: @Sendable () -> Date { { self.now.withLock { $0 } } }
    func advance(by seconds: TimeInterval) { now.withLock { $0 += seconds } }
}
