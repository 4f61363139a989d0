import Crypto
import Foundation
import Synchronization
import _CryptoExtras

/// The identity platform (Entra ID v2.0 endpoints): token, device code, discovery.
extension GraphSimulator {
    static let jwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    static let deviceCodeGrantType = "urn:ietf:params:oauth:grant-type:device_code"
    static let graphResource = "https://graph.microsoft.com"

    // MARK: Errors

    /// The platform's error body; `invalid_client` answers 401, everything else 400.
    func identityError(_ error: String, code: Int, _ description: String, status: Int? = nil) -> OutgoingResponse {
        let traceID = Identifiers.guid()
        let correlationID = Identifiers.guid()
        let now = Date()
        let text =
            "AADSTS\(code): \(description) Trace ID: \(traceID) Correlation ID: \(correlationID) Timestamp: \(GraphDate.identityTimestamp(now))"
        let body: JSONValue = .object([
            "error": .string(error),
            "error_description": .string(text),
            "error_codes": .array([.int(code)]),
            "timestamp": .string(GraphDate.identityTimestamp(now)),
            "trace_id": .string(traceID),
            "correlation_id": .string(correlationID),
            "error_uri": .string("\(authorityURL)/error?code=\(code)"),
        ])
        var response = OutgoingResponse.json(status ?? (error == "invalid_client" ? 401 : 400), body)
        response.headers += [("Cache-Control", "no-store, no-cache"), ("x-ms-request-id", traceID)]
        return response
    }

    func missingParameter(_ name: String) -> OutgoingResponse {
        identityError("invalid_request", code: 900144, "The request body must contain the following parameter: '\(name)'.")
    }

    func identityFaultResponse(_ fault: Fault) async -> OutgoingResponse? {
        switch fault {
        case .tooManyRequests(let seconds):
            var response = identityError("temporarily_unavailable", code: 50196, "The server is busy; too many requests.", status: 429)
            response.headers.append(("Retry-After", String(seconds)))
            return response
        case .serviceUnavailable(let seconds):
            var response = identityError("temporarily_unavailable", code: 50196, "The server is temporarily unavailable.", status: 503)
            if let seconds { response.headers.append(("Retry-After", String(seconds))) }
            return response
        case .error(let status, let code, let message):
            return identityError(code, code: 90000, message, status: status)
        case .delay(let duration):
            try? await Task.sleep(for: duration)
            return nil
        }
    }

    func isKnownTenant(_ tenant: String, allowMultiTenant: Bool) -> Bool {
        let lowered = tenant.lowercased()
        if lowered == configuration.tenantID.lowercased() || configuration.tenantDomains.contains(where: { $0.lowercased() == lowered }) {
            return true
        }
        return allowMultiTenant && ["common", "organizations"].contains(lowered)
    }

    func unknownTenant(_ tenant: String) -> OutgoingResponse {
        identityError(
            "invalid_request", code: 90002,
            "Tenant '\(tenant)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
    }

    func unknownClient(_ clientID: String, tenant: String) -> OutgoingResponse {
        identityError(
            "unauthorized_client", code: 700016,
            "Application with identifier '\(clientID)' was not found in the directory '\(tenant)'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        )
    }

    // MARK: Token endpoint

    func handleToken(_ request: IncomingRequest, tenant: String) -> OutgoingResponse {
        guard isKnownTenant(tenant, allowMultiTenant: true) else { return unknownTenant(tenant) }
        var form: [String: String] = [:]
        if request.header("Content-Type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true {
            for pair in FormEncoding.decode(String(decoding: request.body, as: UTF8.self)) where form[pair.name] == nil {
                form[pair.name] = pair.value
            }
        }
        // client_secret_basic: Authorization: Basic base64(client_id:client_secret)
        if let authorization = request.header("Authorization"), authorization.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        {
            form["client_id"] = form["client_id"] ?? FormEncoding.unescape(text[..<colon])
            form["client_secret"] = form["client_secret"] ?? FormEncoding.unescape(text[text.index(after: colon)...])
        }
        guard let grantType = form["grant_type"] else { return missingParameter("grant_type") }
        guard let clientID = form["client_id"] else { return missingParameter("client_id") }
        guard clientID.lowercased() == configuration.clientID.lowercased() else { return unknownClient(clientID, tenant: tenant) }
        switch grantType {
        case "client_credentials":
            guard tenant.lowercased() != "common" else {
                return identityError(
                    "invalid_request", code: 90009,
                    "Application is requesting a token for itself. This scenario is supported only if resource is specified using the GUID based App Identifier."
                )
            }
            return clientCredentials(form, tenant: tenant)
        case Self.deviceCodeGrantType:
            return redeemDeviceCode(form)
        case "refresh_token":
            return redeemRefreshToken(form, tenant: tenant)
        default:
            return identityError("unsupported_grant_type", code: 70003, "The app requested an unsupported grant type '\(grantType)'.")
        }
    }

    func clientCredentials(_ form: [String: String], tenant: String) -> OutgoingResponse {
        guard let scope = form["scope"] else { return missingParameter("scope") }
        let scopes = scope.split(separator: " ").map(String.init)
        guard scopes.count == 1, scopes[0].hasSuffix("/.default") else {
            return identityError(
                "invalid_scope", code: 1_002_012,
                "The provided value for scope \(scope) is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            )
        }
        if let failure = authenticateClient(form, tenant: tenant, required: true) { return failure }
        return tokenResponse(userID: nil, scopes: scopes, includeRefreshToken: false, includeIDToken: false)
    }

    /// Checks the client's secret or assertion; nil when it authenticated. A public client (no
    /// credential at all) passes when `required` is false.
    func authenticateClient(_ form: [String: String], tenant: String, required: Bool) -> OutgoingResponse? {
        if let secret = form["client_secret"] {
            guard let expected = configuration.clientSecret, constantTimeEquals(Array(secret.utf8), Array(expected.utf8)) else {
                return identityError(
                    "invalid_client", code: 7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(configuration.clientID)'."
                )
            }
            return nil
        }
        if let assertionType = form["client_assertion_type"] {
            guard assertionType == Self.jwtBearerAssertionType else {
                return identityError("invalid_request", code: 7_000_216, "'client_assertion_type' must be '\(Self.jwtBearerAssertionType)'.")
            }
            guard let assertion = form["client_assertion"] else { return missingParameter("client_assertion") }
            return verifyClientAssertion(assertion, tenant: tenant)
        }
        guard required else { return nil }
        return identityError(
            "invalid_client", code: 7_000_218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    }

    /// private_key_jwt (graph-protocol 7.2).
    func verifyClientAssertion(_ assertion: String, tenant: String) -> OutgoingResponse? {
        func invalid(_ code: Int, _ text: String) -> OutgoingResponse { identityError("invalid_client", code: code, text) }
        guard let jwt = CompactJWT(assertion) else {
            return invalid(50027, "JWT token is invalid or malformed.")
        }
        let alg = jwt.header["alg"]?.stringValue ?? ""
        guard alg == "PS256" || alg == "RS256" else {
            return invalid(
                5_002_738, "Invalid JWT token. '\(alg)' is not a supported signature algorithm. Supported signing algorithms are: 'PS256, RS256'.")
        }
        let certificate: RegisteredCertificate?
        let presented: String
        if let thumbprint = jwt.header["x5t#S256"]?.stringValue {
            presented = thumbprint
            certificate = Base64URL.decode(thumbprint).flatMap { bytes in certificates.first { $0.sha256 == bytes } }
        } else if let thumbprint = jwt.header["x5t"]?.stringValue {
            presented = thumbprint
            certificate = Base64URL.decode(thumbprint).flatMap { bytes in certificates.first { $0.sha1 == bytes } }
        } else {
            return invalid(
                700_027,
                "Client assertion failed signature validation. [Reason - The key was not found. The assertion header carries neither 'x5t#S256' nor 'x5t'.]"
            )
        }
        guard let certificate else {
            return invalid(
                700_027,
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '\(presented)']"
            )
        }
        guard jwt.verifies(with: certificate.publicKey, alg: alg) else {
            return invalid(
                700_027,
                "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]")
        }
        let audiences: [String]
        switch jwt.claims["aud"] {
        case .string(let audience): audiences = [audience]
        case .array(let values): audiences = values.compactMap(\.stringValue)
        default: audiences = []
        }
        let accepted = Set(
            ([tenant, configuration.tenantID] + configuration.tenantDomains).map { "\(authorityURL)/\($0)/oauth2/v2.0/token".lowercased() })
        guard audiences.contains(where: { accepted.contains($0.lowercased()) }) else {
            return invalid(
                700_212,
                "The audience claim of the client assertion is not valid. Expected the token endpoint '\(authorityURL)/\(tenant)/oauth2/v2.0/token', got '\(audiences.joined(separator: ", "))'."
            )
        }
        let issuer = jwt.claims["iss"]?.stringValue
        let subject = jwt.claims["sub"]?.stringValue
        guard issuer?.lowercased() == configuration.clientID.lowercased(), subject?.lowercased() == configuration.clientID.lowercased() else {
            return invalid(
                700_021,
                "Client assertion application identifier doesn't match 'client_id' parameter. The 'iss' and 'sub' claims must both be the client id.")
        }
        guard let jti = jwt.claims["jti"]?.stringValue, !jti.isEmpty else {
            return invalid(50027, "JWT token is invalid or malformed. The 'jti' claim is required.")
        }
        let now = Date()
        let skew = configuration.clockSkew.timeInterval
        guard let expires = jwt.date("exp") else {
            return invalid(700_024, "Client assertion is not within its valid time range. The 'exp' claim is required.")
        }
        let notBefore = jwt.date("nbf") ?? jwt.date("iat") ?? now
        guard expires.addingTimeInterval(skew) > now, notBefore.addingTimeInterval(-skew) <= now else {
            return invalid(
                700_024,
                "Client assertion is not within its valid time range. Current time: \(GraphDate.secondsFormat(now)), assertion valid from \(GraphDate.secondsFormat(notBefore)), expiry time of assertion \(GraphDate.secondsFormat(expires))."
            )
        }
        guard expires.timeIntervalSince(notBefore) <= configuration.maxClientAssertionLifetime.timeInterval else {
            return invalid(
                700_024,
                "Client assertion is not within its valid time range. Its lifetime ('exp' - 'nbf') exceeds \(Int(configuration.maxClientAssertionLifetime.timeInterval)) seconds."
            )
        }
        return nil
    }

    // MARK: Tokens

    /// Issues tokens and answers the platform's success body.
    func tokenResponse(userID: String?, scopes: [String], includeRefreshToken: Bool, includeIDToken: Bool) -> OutgoingResponse {
        let lifetime = max(1, Int(configuration.accessTokenLifetime.timeInterval.rounded()))
        let now = Date()
        let expiresAt = now.addingTimeInterval(Double(lifetime))
        let graphScopes = scopes.filter { !["openid", "profile", "offline_access", "email"].contains($0.lowercased()) }
        let accessToken = makeAccessToken(userID: userID, scopes: graphScopes, issuedAt: now, expiresAt: expiresAt)
        var members: [JSONValue.Member] = [
            .init("token_type", "Bearer")
        ]
        if userID != nil { members.append(.init("scope", .string(graphScopes.joined(separator: " ")))) }
        members += [
            .init("expires_in", .int(lifetime)),
            .init("ext_expires_in", .int(lifetime)),
            .init("access_token", .string(accessToken)),
        ]
        var refreshToken: String?
        if includeRefreshToken, userID != nil {
            let token = "1.A" + Identifiers.random(bytes: 48)
            refreshToken = token
            members.append(.init("refresh_token", .string(token)))
        }
        if includeIDToken, let userID, let user = user(matching: userID), let idToken = try? makeIDToken(user: user, issuedAt: now) {
            members.append(.init("id_token", .string(idToken)))
        }
        state.withLock { state in
            state.accessTokens[accessToken] = AccessGrant(expiresAt: expiresAt, userID: userID, scopes: graphScopes)
            if let refreshToken, let userID { state.refreshTokens[refreshToken] = RefreshGrant(userID: userID, scopes: scopes) }
        }
        var response = OutgoingResponse.json(200, .object(members))
        response.headers.append(("Cache-Control", "no-store, no-cache"))
        return response
    }

    func makeAccessToken(userID: String?, scopes: [String], issuedAt: Date, expiresAt: Date) -> String {
        if configuration.accessTokenFormat == .opaque {
            return "EwB" + Identifiers.random(bytes: 64)
        }
        let tenant = configuration.tenantID
        var claims: [JSONValue.Member] = [
            .init("aud", .string(Self.graphResource)),
            .init("iss", .string("https://sts.windows.net/\(tenant)/")),
            .init("iat", .int(Int(issuedAt.timeIntervalSince1970))),
            .init("nbf", .int(Int(issuedAt.timeIntervalSince1970))),
            .init("exp", .int(Int(expiresAt.timeIntervalSince1970))),
            .init("app_displayname", "graph-bridge"),
            .init("appid", .string(configuration.clientID)),
            .init("appidacr", userID == nil ? "2" : "0"),
            .init("idp", .string("https://sts.windows.net/\(tenant)/")),
            .init("tid", .string(tenant)),
            .init("uti", .string(Identifiers.random(bytes: 16))),
            .init("ver", "1.0"),
        ]
        if let userID, let user = user(matching: userID) {
            claims += [
                .init("oid", .string(user.id)), .init("sub", .string(user.id)), .init("upn", .string(user.userPrincipalName)),
                .init("unique_name", .string(user.userPrincipalName)), .init("name", .string(user.displayName)),
                .init("scp", .string(scopes.map { $0.replacingOccurrences(of: Self.graphResource + "/", with: "") }.joined(separator: " "))),
            ]
        } else {
            claims += [
                .init("oid", .string(configuration.servicePrincipalID)), .init("sub", .string(configuration.servicePrincipalID)),
                .init("roles", .array(["Mail.Read"])),
            ]
        }
        let header: JSONValue = .object(["typ": "JWT", "alg": "RS256", "kid": .string(configuration.signingKeyID)])
        return (try? CompactJWT.sign(header: header, claims: .object(claims), key: signingKey)) ?? "EwB" + Identifiers.random(bytes: 64)
    }

    func makeIDToken(user: SimulatedUser, issuedAt: Date) throws -> String {
        let claims: JSONValue = .object([
            "aud": .string(configuration.clientID),
            "iss": .string("\(authorityURL)/\(configuration.tenantID)/v2.0"),
            "iat": .int(Int(issuedAt.timeIntervalSince1970)),
            "nbf": .int(Int(issuedAt.timeIntervalSince1970)),
            "exp": .int(Int(issuedAt.timeIntervalSince1970) + 3600),
            "name": .string(user.displayName),
            "oid": .string(user.id),
            "preferred_username": .string(user.userPrincipalName),
            "sub": .string(user.id),
            "tid": .string(configuration.tenantID),
            "ver": "2.0",
        ])
        let header: JSONValue = .object(["typ": "JWT", "alg": "RS256", "kid": .string(configuration.signingKeyID)])
        return try CompactJWT.sign(header: header, claims: claims, key: signingKey)
    }

    // MARK: Device code flow

    func handleDeviceCode(_ request: IncomingRequest, tenant: String) -> OutgoingResponse {
        guard isKnownTenant(tenant, allowMultiTenant: true) else { return unknownTenant(tenant) }
        var form: [String: String] = [:]
        for pair in FormEncoding.decode(String(decoding: request.body, as: UTF8.self)) where form[pair.name] == nil {
            form[pair.name] = pair.value
        }
        guard let clientID = form["client_id"] else { return missingParameter("client_id") }
        guard clientID.lowercased() == configuration.clientID.lowercased() else { return unknownClient(clientID, tenant: tenant) }
        guard let scope = form["scope"], !scope.isEmpty else { return missingParameter("scope") }
        let alphabet = Array("BCDFGHJKLMNPQRSTVWXZ23456789")
        let userCode = String((0..<9).map { _ in alphabet.randomElement()! })
        let deviceCode = "DAQABAAEAAAD" + Identifiers.random(bytes: 96)
        let lifetime = max(1, Int(configuration.deviceCodeLifetime.timeInterval.rounded()))
        var grant = DeviceCodeGrant(
            userCode: userCode, deviceCode: deviceCode, scopes: scope.split(separator: " ").map(String.init), status: .pending, userID: nil, polls: 0,
            expiresAt: Date().addingTimeInterval(Double(lifetime)))
        if let autoUser = configuration.autoApproveDeviceCodesAs, let user = user(matching: autoUser) {
            grant.status = .approved
            grant.userID = user.id
        }
        state.withLock { $0.deviceCodes[deviceCode] = grant }
        let verificationURI = "https://microsoft.com/devicelogin"
        return .json(
            200,
            .object([
                "user_code": .string(userCode),
                "device_code": .string(deviceCode),
                "verification_uri": .string(verificationURI),
                "expires_in": .int(lifetime),
                "interval": .int(configuration.deviceCodePollingInterval),
                "message": .string(
                    "To sign in, use a web browser to open the page \(verificationURI) and enter the code \(userCode) to authenticate."),
            ]))
    }

    func redeemDeviceCode(_ form: [String: String]) -> OutgoingResponse {
        guard let deviceCode = form["device_code"] else { return missingParameter("device_code") }
        enum Outcome {
            case unknown, pending, slowDown, declined, expired, redeemed, approved(DeviceCodeGrant)
        }
        let now = Date()
        let outcome: Outcome = state.withLock { state in
            guard var grant = state.deviceCodes[deviceCode] else { return .unknown }
            grant.polls += 1
            defer { state.deviceCodes[deviceCode] = grant }
            if grant.status == .pending || grant.status == .approved, grant.expiresAt <= now { grant.status = .expired }
            switch grant.status {
            case .expired: return .expired
            case .declined: return .declined
            case .redeemed: return .redeemed
            case .pending, .approved:
                if let left = state.slowDowns[deviceCode], left > 0 {
                    state.slowDowns[deviceCode] = left - 1
                    return .slowDown
                }
                guard grant.status == .approved else { return .pending }
                grant.status = .redeemed
                return .approved(grant)
            }
        }
        switch outcome {
        case .unknown:
            return identityError("bad_verification_code", code: 70019, "The device_code sent to the /token endpoint wasn't recognized.")
        case .pending:
            return identityError("authorization_pending", code: 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        case .slowDown:
            return identityError(
                "slow_down", code: 70016, "OAuth 2.0 device flow error. The client is polling too quickly; add 5 seconds to the interval.")
        case .declined:
            return identityError("authorization_declined", code: 65004, "User declined to consent to access the app.")
        case .expired:
            return identityError(
                "expired_token", code: 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
        case .redeemed:
            return identityError("invalid_grant", code: 54005, "OAuth2 device code was already redeemed, please retry with a new valid code.")
        case .approved(let grant):
            let scopes = grant.scopes
            return tokenResponse(
                userID: grant.userID, scopes: scopes, includeRefreshToken: scopes.contains("offline_access"),
                includeIDToken: scopes.contains("openid"))
        }
    }

    // MARK: Refresh tokens

    func redeemRefreshToken(_ form: [String: String], tenant: String) -> OutgoingResponse {
        guard let refreshToken = form["refresh_token"] else { return missingParameter("refresh_token") }
        if let failure = authenticateClient(form, tenant: tenant, required: false) { return failure }
        let grant: RefreshGrant? = state.withLock { $0.refreshTokens.removeValue(forKey: refreshToken) }
        guard let grant else {
            return identityError(
                "invalid_grant", code: 70000,
                "Provided grant is invalid or malformed. The refresh token has been redeemed already or revoked; sign in again.")
        }
        if let requested = form["scope"] {
            // `Mail.Read` and `https://graph.microsoft.com/Mail.Read` name the same scope.
            func normalized(_ scope: some StringProtocol) -> String {
                scope.lowercased().replacingOccurrences(of: Self.graphResource + "/", with: "")
            }
            let granted = Set(grant.scopes.map(normalized))
            let asked = requested.split(separator: " ").map(normalized)
            let extra = asked.filter { !granted.contains($0) && !["openid", "profile", "offline_access", "email"].contains($0) }
            if !extra.isEmpty {
                state.withLock { $0.refreshTokens[refreshToken] = grant }
                return identityError(
                    "invalid_grant", code: 65001,
                    "The user or administrator has not consented to use the application with ID '\(configuration.clientID)'. Send an interactive authorization request for this user and resource. Scopes not granted: \(extra.joined(separator: " "))."
                )
            }
        }
        return tokenResponse(userID: grant.userID, scopes: grant.scopes, includeRefreshToken: true, includeIDToken: grant.scopes.contains("openid"))
    }

    // MARK: Device code scripting (Swift API)

    /// Approves a pending device code for `user` (UPN or id), so the next poll gets tokens.
    /// Returns false when no pending code has that `user_code`.
    @discardableResult
    public func approveDeviceCode(userCode: String, as user: String = SimulatedUser.alice.userPrincipalName) -> Bool {
        guard let user = self.user(matching: user) else { return false }
        return updateDeviceCode(userCode: userCode) { grant in
            guard grant.status == .pending else { return false }
            grant.status = .approved
            grant.userID = user.id
            return true
        }
    }

    /// The user declines: the next poll answers `authorization_declined`.
    @discardableResult
    public func declineDeviceCode(userCode: String) -> Bool {
        updateDeviceCode(userCode: userCode) { grant in
            guard grant.status == .pending else { return false }
            grant.status = .declined
            return true
        }
    }

    /// The code expires now: the next poll answers `expired_token`.
    @discardableResult
    public func expireDeviceCode(userCode: String) -> Bool {
        updateDeviceCode(userCode: userCode) { grant in
            guard grant.status == .pending || grant.status == .approved else { return false }
            grant.status = .expired
            return true
        }
    }

    /// The next `times` polls of this code answer `slow_down` (before anything else).
    @discardableResult
    public func slowDownDeviceCode(userCode: String, times: Int = 1) -> Bool {
        state.withLock { state in
            guard let deviceCode = state.deviceCodes.first(where: { $0.value.userCode == userCode })?.key else { return false }
            state.slowDowns[deviceCode, default: 0] += times
            return true
        }
    }

    private func updateDeviceCode(userCode: String, _ change: (inout DeviceCodeGrant) -> Bool) -> Bool {
        state.withLock { state in
            guard let deviceCode = state.deviceCodes.first(where: { $0.value.userCode.uppercased() == userCode.uppercased() })?.key,
                var grant = state.deviceCodes[deviceCode]
            else { return false }
            let changed = change(&grant)
            state.deviceCodes[deviceCode] = grant
            return changed
        }
    }

    // MARK: Discovery

    func handleOpenIDConfiguration(tenant: String) -> OutgoingResponse {
        guard isKnownTenant(tenant, allowMultiTenant: true) else { return unknownTenant(tenant) }
        let base = "\(authorityURL)/\(tenant)"
        let issuerTenant = ["common", "organizations"].contains(tenant.lowercased()) ? "{tenantid}" : configuration.tenantID
        return .json(
            200,
            .object([
                "token_endpoint": .string("\(base)/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported": .array(["client_secret_post", "private_key_jwt", "client_secret_basic"]),
                "jwks_uri": .string("\(base)/discovery/v2.0/keys"),
                "response_modes_supported": .array(["query", "fragment", "form_post"]),
                "subject_types_supported": .array(["pairwise"]),
                "id_token_signing_alg_values_supported": .array(["RS256"]),
                "response_types_supported": .array(["code", "id_token", "code id_token", "id_token token"]),
                "scopes_supported": .array(["openid", "profile", "email", "offline_access"]),
                "issuer": .string("\(authorityURL)/\(issuerTenant)/v2.0"),
                "request_uri_parameter_supported": false,
                "userinfo_endpoint": .string("\(graphBaseURL.replacingOccurrences(of: "/v1.0", with: ""))/oidc/userinfo"),
                "authorization_endpoint": .string("\(base)/oauth2/v2.0/authorize"),
                "device_authorization_endpoint": .string("\(base)/oauth2/v2.0/devicecode"),
                "http_logout_supported": true,
                "frontchannel_logout_supported": true,
                "end_session_endpoint": .string("\(base)/oauth2/v2.0/logout"),
                "claims_supported": .array(["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "preferred_username", "tid", "ver"]),
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            ]))
    }

    /// The JWKS: the simulator's signing key, with its self-signed certificate as `x5c`.
    func jwks() -> JSONValue {
        let primitives = try? signingKey.publicKey.getKeyPrimitives()
        return .object([
            "keys": .array([
                .object([
                    "kty": "RSA",
                    "use": "sig",
                    "kid": .string(configuration.signingKeyID),
                    "x5t": .string(signingCertificate.x5t),
                    "n": .string(Base64URL.encode(primitives?.modulus ?? Data())),
                    "e": .string(Base64URL.encode(primitives?.publicExponent ?? Data())),
                    "x5c": .array([.string(Data(signingCertificate.derRepresentation).base64EncodedString())]),
                    "issuer": .string("\(authorityURL)/\(configuration.tenantID)/v2.0"),
                ])
            ])
        ])
    }
}

func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}

extension Duration {
    var timeInterval: TimeInterval {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
