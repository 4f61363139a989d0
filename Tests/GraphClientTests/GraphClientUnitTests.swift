import _CryptoExtras
import BridgeGraph
import Crypto
import Foundation
import GraphClient
import Testing

@Suite("Graph client pieces")
struct GraphClientUnitTests {
    @Test("national cloud presets and overrides")
    func endpoints() {
        let global = GraphEndpoints(cloud: .global)
        #expect(global.tokenURL(tenant: "contoso.onmicrosoft.com") == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        #expect(global.defaultScope == "https://graph.microsoft.com/.default")
        #expect(GraphEndpoints(cloud: .usgovDoD).graphBase == "https://dod-graph.microsoft.us/v1.0")
        #expect(GraphEndpoints(cloud: .china).authority == "https://login.chinacloudapi.cn")
        let local = GraphEndpoints(cloud: .global, authorityOverride: "http://127.0.0.1:9/", graphBaseOverride: "http://127.0.0.1:9/v1.0/")
        #expect(local.graphBase == "http://127.0.0.1:9/v1.0")
        #expect(local.defaultScope == "http://127.0.0.1:9/.default")
        #expect(local.deviceCodeURL(tenant: "t") == "http://127.0.0.1:9/t/oauth2/v2.0/devicecode")
    }

    @Test("Graph's seven-digit timestamps parse; ours format with milliseconds")
    func dates() throws {
        let date = try #require(GraphDate.parse("2026-12-01T11:00:00.1234567Z"))
        #expect(abs(date.timeIntervalSince1970 - 1_796_122_800.123) < 0.001)
        #expect(GraphDate.parse("2026-12-01T11:00:00Z") != nil)
        #expect(GraphDate.format(Date(timeIntervalSince1970: 1_796_122_800.5)) == "2026-12-01T11:00:00.500Z")
    }

    @Test("lifetimes are capped at Graph's maximum per resource")
    func lifetimes() {
        #expect(ResourceLifetime.maximum(for: "users/alice@contoso.com/mailFolders('Inbox')/messages", includeResourceData: false) == .seconds(4230 * 60))
        #expect(ResourceLifetime.maximum(for: "me/messages", includeResourceData: true) == .seconds(1440 * 60))
        #expect(ResourceLifetime.maximum(for: "teams/getAllMessages", includeResourceData: true) == .seconds(4320 * 60))
        #expect(ResourceLifetime.maximum(for: "drives/b!abc/root", includeResourceData: false) == .seconds(42_300 * 60))
        #expect(ResourceLifetime.maximum(for: "users", includeResourceData: false) == .seconds(41_760 * 60))
        #expect(ResourceLifetime.maximum(for: "security/alerts?$filter=status eq 'New'", includeResourceData: false) == .seconds(43_200 * 60))
        #expect(ResourceLifetime.maximum(for: "communications/presences?$filter=id in ('a')", includeResourceData: false) == .seconds(3600))
        #expect(ResourceLifetime.maximum(for: "something/new", includeResourceData: false) == .seconds(4230 * 60))
    }

    @Test("renewal happens at half the lifetime, never with less than a quarter left")
    func renewal() {
        let start = 1_000_000.0
        // Three days: renew after 1.5 days.
        #expect(RenewalSchedule.renewalDate(renewedAt: start, expiration: start + 259_200) == start + 129_600)
        // Ten seconds (a test cap): renew after five.
        #expect(RenewalSchedule.renewalDate(renewedAt: start, expiration: start + 10) == start + 5)
        for lifetime in [10.0, 300, 3600, 86_400, 2_592_000] {
            let at = RenewalSchedule.renewalDate(renewedAt: start, expiration: start + lifetime)
            #expect(start + lifetime - at >= lifetime / 4)
        }
    }

    @Test("the certificate assertion is a PS256 JWT with x5t#S256 and the claims Entra ID checks", .enabled(if: vectorsPresent, "needs ../shared/graph-vectors beside the checkout"))
    func assertion() throws {
        let certificate = try String(contentsOfFile: vector("certificate.pem"), encoding: .utf8)
        let key = try String(contentsOfFile: vector("private-key.pem"), encoding: .utf8)
        let assertion = try CertificateAssertion(certificatePEM: certificate, privateKeyPEM: key)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let jwt = try assertion.make(clientID: "app-id", audience: "https://login.example/t/oauth2/v2.0/token", now: now)
        let parts = jwt.split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        let header = try #require(try JSONSerialization.jsonObject(with: base64URLDecode(parts[0])) as? [String: String])
        #expect(header["alg"] == "PS256")
        // The thumbprint is SHA-256 of the certificate's DER bytes.
        let der = try #require(Data(base64Encoded: certificate.components(separatedBy: "-----")[2].filter { !$0.isWhitespace }))
        #expect(header["x5t#S256"] == base64URL(Array(SHA256.hash(data: der))))
        let claims = try #require(try JSONSerialization.jsonObject(with: base64URLDecode(parts[1])) as? [String: Any])
        #expect(claims["aud"] as? String == "https://login.example/t/oauth2/v2.0/token")
        #expect(claims["iss"] as? String == "app-id")
        #expect(claims["sub"] as? String == "app-id")
        #expect((claims["jti"] as? String)?.isEmpty == false)
        #expect(claims["nbf"] as? Int == 1_800_000_000)
        #expect(claims["exp"] as? Int == 1_800_000_600)
        // The signature verifies with the key's public half under PSS.
        let publicKey = try _RSA.Signing.PrivateKey(pemRepresentation: key).publicKey
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try base64URLDecode(parts[2]))
        #expect(publicKey.isValidSignature(signature, for: Data("\(parts[0]).\(parts[1])".utf8), padding: .PSS))
        #expect(!publicKey.isValidSignature(signature, for: Data("\(parts[0]).x".utf8), padding: .PSS))
    }
}

let vectorDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/graph-vectors/rich-notification-dotnet-core").path
let vectorsPresent = FileManager.default.fileExists(atPath: vectorDirectory + "/certificate.pem")
func vector(_ name: String) -> String { vectorDirectory + "/" + name }

func base64URL(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

func base64URLDecode(_ text: String) throws -> Data {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while base64.count % 4 != 0 { base64 += "=" }
    return try #require(Data(base64Encoded: base64))
}
