import CurlKit
import Foundation
import TestSupport
import Testing
import _CryptoExtras

@testable import GraphSimulator

/// A client assertion built by the test itself (not with the simulator's JWT code).
struct Assertion {
    var alg = "PS256"
    var thumbprintHeader: (name: String, value: String)
    var audience: String
    var issuer: String
    var subject: String
    var jti: String? = UUID().uuidString
    var notBefore = Date()
    var lifetime: TimeInterval = 600
    var keyPEM: String

    init(certificate: SelfSignedCertificate, audience: String, clientID: String) {
        thumbprintHeader = ("x5t#S256", certificate.x5tS256)
        self.audience = audience
        issuer = clientID
        subject = clientID
        keyPEM = certificate.privateKeyPEM
    }

    func encoded() throws -> String {
        func b64(_ bytes: some DataProtocol) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let header = #"{"alg":"\#(alg)","typ":"JWT","\#(thumbprintHeader.name)":"\#(thumbprintHeader.value)"}"#
        let nbf = Int(notBefore.timeIntervalSince1970)
        var claims = #"{"aud":"\#(audience)","iss":"\#(issuer)","sub":"\#(subject)","nbf":\#(nbf),"iat":\#(nbf),"exp":\#(nbf + Int(lifetime))"#
        if let jti { claims += #","jti":"\#(jti)""# }
        claims += "}"
        let input = b64(Array(header.utf8)) + "." + b64(Array(claims.utf8))
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: keyPEM)
        let signature = try key.signature(for: Array(input.utf8), padding: alg == "PS256" ? .PSS : .insecurePKCS1v1_5)
        return input + "." + b64(signature.rawRepresentation)
    }
}

@Suite("identity platform")
struct IdentityPlatformTests {
    static let scope = "https://graph.microsoft.com/.default"

    @Test("client credentials with the secret give a bearer token Graph accepts; a wrong secret is 401 invalid_client")
    func clientSecret() async throws {
        try await Harness.withSimulator { live in
            let config = live.simulator.configuration
            let good = try await live.postForm(
                live.simulator.tokenURL,
                [
                    ("client_id", config.clientID), ("client_secret", config.clientSecret!), ("scope", Self.scope),
                    ("grant_type", "client_credentials"),
                ])
            #expect(good.status == 200)
            #expect(good.json?["token_type"] == "Bearer")
            #expect(good.json?["expires_in"] == .int(3599))
            #expect(good.json?["refresh_token"] == nil)
            let token = try #require(good.json?["access_token"]?.stringValue)
            #expect(token.split(separator: ".").count == 3, "JWT access tokens by default")
            #expect(try await live.call("GET", "/subscriptions", token: token).status == 200)

            let bad = try await live.postForm(
                live.simulator.tokenURL,
                [("client_id", config.clientID), ("client_secret", "nope"), ("scope", Self.scope), ("grant_type", "client_credentials")])
            #expect(bad.status == 401)
            let body = try #require(bad.json)
            #expect(body["error"] == "invalid_client")
            #expect(body["error_codes"] == .array([.int(7_000_215)]))
            #expect(body["error_description"]?.stringValue?.hasPrefix("AADSTS7000215:") == true)
            #expect(body["trace_id"]?.stringValue?.count == 36)
            #expect(body["correlation_id"]?.stringValue?.count == 36)
            #expect(body["timestamp"] != nil)

            // HTTP Basic carries the secret too (client_secret_basic).
            let basic = Data("\(config.clientID):\(config.clientSecret!)".utf8).base64EncodedString()
            let viaBasic = try await live.postForm(
                live.simulator.tokenURL, [("scope", Self.scope), ("grant_type", "client_credentials")], headers: [("Authorization", "Basic \(basic)")]
            )
            #expect(viaBasic.status == 200, "\(viaBasic.bodyText)")
        }
    }

    @Test("the token endpoint refuses an unknown tenant, an unknown client, a scope without /.default and a missing grant_type")
    func tokenRequestErrors() async throws {
        try await Harness.withSimulator { live in
            let config = live.simulator.configuration
            let base = [("client_secret", config.clientSecret!), ("grant_type", "client_credentials")]
            let tenant = try await live.postForm(
                "\(live.simulator.authorityURL)/not-a-tenant/oauth2/v2.0/token", base + [("client_id", config.clientID), ("scope", Self.scope)])
            #expect(tenant.status == 400)
            #expect(tenant.json?["error_codes"] == .array([.int(90002)]))
            let client = try await live.postForm(live.simulator.tokenURL, base + [("client_id", UUID().uuidString), ("scope", Self.scope)])
            #expect(client.json?["error"] == "unauthorized_client")
            let scope = try await live.postForm(live.simulator.tokenURL, base + [("client_id", config.clientID), ("scope", "Mail.Read")])
            #expect(scope.status == 400)
            #expect(scope.json?["error"] == "invalid_scope")
            let grant = try await live.postForm(live.simulator.tokenURL, [("client_id", config.clientID)])
            #expect(grant.json?["error"] == "invalid_request")
            #expect(grant.json?["error_description"]?.stringValue?.contains("'grant_type'") == true)
            // The domain name works in place of the tenant id.
            let domain = try await live.postForm(
                "\(live.simulator.authorityURL)/contoso.onmicrosoft.com/oauth2/v2.0/token",
                base + [("client_id", config.clientID), ("scope", Self.scope)])
            #expect(domain.status == 200)
        }
    }

    @Test("a certificate assertion is accepted when correctly signed (PS256 + x5t#S256, RS256 + x5t) and refused otherwise")
    func certificateAssertion() async throws {
        let registered = try SelfSignedCertificate.generate(commonName: "bridge-test")
        let stranger = try SelfSignedCertificate.generate(commonName: "not-registered")
        try await Harness.withSimulator({ $0.certificatePEMs = [registered.certificatePEM] }) { live in
            let clientID = live.simulator.configuration.clientID
            func exchange(_ assertion: Assertion) async throws -> CurlKit.HTTPResponse {
                try await live.postForm(
                    live.simulator.tokenURL,
                    [
                        ("client_id", clientID), ("scope", Self.scope), ("grant_type", "client_credentials"),
                        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                        ("client_assertion", try assertion.encoded()),
                    ])
            }
            let good = Assertion(certificate: registered, audience: live.simulator.tokenURL, clientID: clientID)
            let accepted = try await exchange(good)
            #expect(accepted.status == 200, "\(accepted.bodyText)")
            #expect(accepted.json?["access_token"]?.stringValue != nil)

            var rs256 = good
            rs256.alg = "RS256"
            rs256.thumbprintHeader = ("x5t", registered.x5t)
            #expect(try await exchange(rs256).status == 200)

            func refused(_ assertion: Assertion, code: Int, _ comment: Comment) async throws {
                let response = try await exchange(assertion)
                #expect(response.status == 401, comment)
                #expect(response.json?["error"] == "invalid_client", comment)
                #expect(response.json?["error_codes"] == .array([.int(code)]), comment)
            }
            var wrongThumbprint = good
            wrongThumbprint.thumbprintHeader = ("x5t#S256", stranger.x5tS256)
            wrongThumbprint.keyPEM = stranger.privateKeyPEM
            try await refused(wrongThumbprint, code: 700_027, "unregistered certificate")

            var wrongKey = good
            wrongKey.keyPEM = stranger.privateKeyPEM
            try await refused(wrongKey, code: 700_027, "signed with another key")

            var wrongAudience = good
            wrongAudience.audience = "https://login.microsoftonline.com/\(live.simulator.tenantID)/oauth2/v2.0/token"
            try await refused(wrongAudience, code: 700_212, "audience of the real cloud")

            var wrongIssuer = good
            wrongIssuer.issuer = UUID().uuidString
            try await refused(wrongIssuer, code: 700_021, "iss is not the client id")

            var expired = good
            expired.notBefore = Date().addingTimeInterval(-1800)
            try await refused(expired, code: 700_024, "expired 20 min ago")

            var tooLong = good
            tooLong.lifetime = 3600
            try await refused(tooLong, code: 700_024, "lifetime over 10 min")

            var noJTI = good
            noJTI.jti = nil
            try await refused(noJTI, code: 50027, "no jti")

            var sha1WithS256Header = good
            sha1WithS256Header.thumbprintHeader = ("x5t#S256", registered.x5t)
            try await refused(sha1WithS256Header, code: 700_027, "a SHA-1 thumbprint under x5t#S256")
        }
    }

    @Test(
        "an assertion signed by the openssl CLI with PSS salt length 32 (MSAL's) verifies",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "needs /usr/bin/openssl"))
    func opensslInterop() async throws {
        let certificate = try SelfSignedCertificate.generate()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sim-openssl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try certificate.privateKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try certificate.certificatePEM.write(to: directory.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        // The CLI agrees on the certificate's SHA-256 fingerprint.
        let fingerprint = try run(
            "/usr/bin/openssl", ["x509", "-in", directory.appendingPathComponent("cert.pem").path, "-noout", "-fingerprint", "-sha256"])
        #expect(fingerprint.replacingOccurrences(of: ":", with: "").contains(certificate.sha256Thumbprint))

        try await Harness.withSimulator({ $0.certificatePEMs = [certificate.certificatePEM] }) { live in
            let clientID = live.simulator.configuration.clientID
            func b64(_ data: Data) -> String {
                data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
                    of: "=", with: "")
            }
            let now = Int(Date().timeIntervalSince1970)
            let header = #"{"alg":"PS256","typ":"JWT","x5t#S256":"\#(certificate.x5tS256)"}"#
            let claims =
                #"{"aud":"\#(live.simulator.tokenURL)","iss":"\#(clientID)","sub":"\#(clientID)","jti":"\#(UUID())","nbf":\#(now),"exp":\#(now + 600)}"#
            let input = b64(Data(header.utf8)) + "." + b64(Data(claims.utf8))
            let inputFile = directory.appendingPathComponent("input")
            try Data(input.utf8).write(to: inputFile)
            let signatureFile = directory.appendingPathComponent("signature")
            _ = try run(
                "/usr/bin/openssl",
                [
                    "dgst", "-sha256", "-sign", directory.appendingPathComponent("key.pem").path, "-sigopt", "rsa_padding_mode:pss", "-sigopt",
                    "rsa_pss_saltlen:32", "-out", signatureFile.path, inputFile.path,
                ])
            let assertion = input + "." + b64(try Data(contentsOf: signatureFile))
            let response = try await live.postForm(
                live.simulator.tokenURL,
                [
                    ("client_id", clientID), ("scope", Self.scope), ("grant_type", "client_credentials"),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", assertion),
                ])
            #expect(response.status == 200, "\(response.bodyText)")
        }
    }

    @Test("device code flow: pending, then slow_down, then approved gives tokens; declined and expired codes stop")
    func deviceCode() async throws {
        try await Harness.withSimulator { live in
            let clientID = live.simulator.configuration.clientID
            let deviceCodeURL = "\(live.simulator.authorityURL)/organizations/oauth2/v2.0/devicecode"
            let scopes = "https://graph.microsoft.com/Mail.Read offline_access openid"
            func start() async throws -> (userCode: String, deviceCode: String) {
                let response = try await live.postForm(deviceCodeURL, [("client_id", clientID), ("scope", scopes)])
                #expect(response.status == 200)
                let body = try #require(response.json)
                #expect(body["verification_uri"] == "https://microsoft.com/devicelogin")
                #expect(body["expires_in"] == .int(900))
                #expect(body["interval"] == .int(1))
                let userCode = try #require(body["user_code"]?.stringValue)
                #expect(body["message"]?.stringValue?.contains(userCode) == true)
                return (userCode, try #require(body["device_code"]?.stringValue))
            }
            func poll(_ deviceCode: String) async throws -> CurlKit.HTTPResponse {
                try await live.postForm(
                    "\(live.simulator.authorityURL)/organizations/oauth2/v2.0/token",
                    [("client_id", clientID), ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode)])
            }
            let flow = try await start()
            let pending = try await poll(flow.deviceCode)
            #expect(pending.status == 400)
            #expect(pending.json?["error"] == "authorization_pending")
            #expect(live.simulator.slowDownDeviceCode(userCode: flow.userCode))
            #expect(try await poll(flow.deviceCode).json?["error"] == "slow_down")
            #expect(try await poll(flow.deviceCode).json?["error"] == "authorization_pending")
            #expect(live.simulator.approveDeviceCode(userCode: flow.userCode, as: "alice@contoso.com"))
            let granted = try await poll(flow.deviceCode)
            #expect(granted.status == 200, "\(granted.bodyText)")
            let tokens = try #require(granted.json)
            #expect(tokens["refresh_token"]?.stringValue != nil)
            #expect(tokens["id_token"]?.stringValue != nil)
            #expect(tokens["scope"]?.stringValue?.contains("Mail.Read") == true)
            #expect(try await poll(flow.deviceCode).json?["error"] == "invalid_grant", "a device code is redeemed once")

            // The delegated token reaches alice's mailbox through /me, and not bob's.
            let token = try #require(tokens["access_token"]?.stringValue)
            let mine = try live.simulator.createMessage(MessageContent(subject: "for alice"), in: "alice@contoso.com")
            let theirs = try live.simulator.createMessage(MessageContent(subject: "for bob"), in: "bob@contoso.com")
            let own = try await live.call("GET", "/me/messages/\(mine.message.id)?$select=subject", token: token)
            #expect(own.status == 200)
            #expect(own.json?["subject"] == "for alice")
            #expect(try await live.call("GET", "/users/bob@contoso.com/messages/\(theirs.message.id)", token: token).status == 403)

            let declined = try await start()
            #expect(live.simulator.declineDeviceCode(userCode: declined.userCode))
            #expect(try await poll(declined.deviceCode).json?["error"] == "authorization_declined")
            let expired = try await start()
            #expect(live.simulator.expireDeviceCode(userCode: expired.userCode))
            #expect(try await poll(expired.deviceCode).json?["error"] == "expired_token")
            #expect(try await poll("not-a-device-code").json?["error"] == "bad_verification_code")
        }
    }

    @Test("the refresh token rotates: each refresh returns a new one and the old one is invalid_grant")
    func refreshRotation() async throws {
        try await Harness.withSimulator({ $0.autoApproveDeviceCodesAs = "alice@contoso.com" }) { live in
            let clientID = live.simulator.configuration.clientID
            let started = try await live.postForm(
                "\(live.simulator.authorityURL)/common/oauth2/v2.0/devicecode", [("client_id", clientID), ("scope", "Mail.Read offline_access")])
            let deviceCode = try #require(started.json?["device_code"]?.stringValue)
            let first = try await live.postForm(
                "\(live.simulator.authorityURL)/common/oauth2/v2.0/token",
                [("client_id", clientID), ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode)])
            let original = try #require(first.json?["refresh_token"]?.stringValue)
            func refresh(_ token: String, scope: String = "https://graph.microsoft.com/Mail.Read offline_access") async throws -> CurlKit.HTTPResponse
            {
                try await live.postForm(
                    live.simulator.tokenURL,
                    [("client_id", clientID), ("grant_type", "refresh_token"), ("refresh_token", token), ("scope", scope)])
            }
            let widened = try await refresh(original, scope: "Mail.Send")
            #expect(widened.status == 400)
            #expect(widened.json?["error"] == "invalid_grant")
            let second = try await refresh(original)
            #expect(second.status == 200)
            let rotated = try #require(second.json?["refresh_token"]?.stringValue)
            #expect(rotated != original)
            let access = try #require(second.json?["access_token"]?.stringValue)
            #expect(try await live.call("GET", "/subscriptions", token: access).status == 200)

            let reused = try await refresh(original)
            #expect(reused.status == 400)
            #expect(reused.json?["error"] == "invalid_grant")
            #expect(try await refresh(rotated).status == 200)
        }
    }

    @Test("Graph answers 401 InvalidAuthenticationToken without a token, with an unknown one and with an expired one")
    func graphRequiresBearer() async throws {
        try await Harness.withSimulator { live in
            let missing = try await live.call("GET", "/subscriptions", token: nil)
            #expect(missing.status == 401)
            #expect(missing.graphErrorCode == "InvalidAuthenticationToken")
            #expect(missing.graphErrorMessage == "Access token is empty.")
            #expect(missing.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(missing.requestID != nil)
            #expect(try await live.call("GET", "/subscriptions", token: "garbage").status == 401)

            let token = try await live.appToken()
            #expect(try await live.call("GET", "/subscriptions", token: token).status == 200)
            live.simulator.expireAccessTokens()
            let expired = try await live.call("GET", "/subscriptions", token: token)
            #expect(expired.status == 401)
            #expect(expired.graphErrorMessage == "Lifetime validation failed, the token is expired.")
            // A new token works again.
            #expect(try await live.call("GET", "/subscriptions", token: try await live.appToken()).status == 200)
        }
    }

    @Test("access tokens expire after the configured lifetime")
    func shortTokenLifetime() async throws {
        try await Harness.withSimulator({ $0.accessTokenLifetime = .seconds(1) }) { live in
            let response = try await live.postForm(
                live.simulator.tokenURL,
                [
                    ("client_id", live.simulator.configuration.clientID), ("client_secret", live.simulator.configuration.clientSecret!),
                    ("scope", Self.scope), ("grant_type", "client_credentials"),
                ])
            #expect(response.json?["expires_in"] == .int(1))
            let token = try #require(response.json?["access_token"]?.stringValue)
            let deadline = ContinuousClock.now + .seconds(10)
            var status = 200
            // The token's own expiry is the event awaited here: poll the API until it says 401.
            while status == 200, ContinuousClock.now < deadline {
                status = try await live.call("GET", "/subscriptions", token: token).status
                if status == 200 { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(status == 401)
        }
    }

    @Test("OpenID configuration and JWKS; a validationTokens JWT verifies with the published key")
    func discoveryAndValidationTokens() async throws {
        try await Harness.withSimulator { live in
            let tenant = live.simulator.tenantID
            let configuration = try await live.call(
                "GET", "\(live.simulator.authorityURL)/\(tenant)/v2.0/.well-known/openid-configuration", token: nil)
            #expect(configuration.status == 200)
            #expect(configuration.json?["token_endpoint"]?.stringValue == live.simulator.tokenURL)
            #expect(configuration.json?["device_authorization_endpoint"]?.stringValue?.hasSuffix("/oauth2/v2.0/devicecode") == true)
            let jwksURL = try #require(configuration.json?["jwks_uri"]?.stringValue)
            #expect(jwksURL == live.simulator.jwksURL)
            let jwks = try await live.call("GET", jwksURL, token: nil)
            let key = try #require(jwks.json?["keys"]?.arrayValue?.first)
            #expect(key["kid"]?.stringValue == live.simulator.configuration.signingKeyID)
            #expect(key["kty"] == "RSA")

            let token = try live.simulator.makeValidationToken()
            let parts = token.split(separator: ".").map(String.init)
            #expect(parts.count == 3)
            let header = try #require(Base64URL.decode(parts[0]).flatMap { JSONValue.parse($0) })
            let claims = try #require(Base64URL.decode(parts[1]).flatMap { JSONValue.parse($0) })
            #expect(header["alg"] == "RS256")
            #expect(header["kid"] == key["kid"])
            #expect(claims["aud"]?.stringValue == live.simulator.configuration.clientID)
            #expect(claims["iss"]?.stringValue == "https://sts.windows.net/\(tenant)/")
            #expect(claims["appid"]?.stringValue == GraphSimulator.changeNotificationPublisherID)
            #expect(claims["tid"]?.stringValue == tenant)
            let publicKey = try _RSA.Signing.PublicKey(
                n: try #require(Base64URL.decode(key["n"]?.stringValue ?? "")), e: try #require(Base64URL.decode(key["e"]?.stringValue ?? "")))
            let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Base64URL.decode(parts[2])))
            #expect(publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1]).utf8), padding: .insecurePKCS1v1_5))

            let v2 = try live.simulator.makeValidationToken(ValidationTokenOptions(version: .v2))
            let v2Claims = try #require(Base64URL.decode(v2.split(separator: ".")[1]).flatMap { JSONValue.parse($0) })
            #expect(v2Claims["iss"]?.stringValue == "https://login.microsoftonline.com/\(tenant)/v2.0")
            #expect(v2Claims["azp"]?.stringValue == GraphSimulator.changeNotificationPublisherID)
            #expect(v2Claims["appid"] == nil)
        }
    }
}

/// Runs a program and returns its standard output.
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw SimulatorError(message: "\(executable) exited with \(process.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}
