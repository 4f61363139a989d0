public import Transport
public import Foundation
public import Logging

/// Gives a valid access token for Graph, renewing it before it expires.
public protocol AccessTokenProvider: Sendable {
    func accessToken() async throws -> String
    /// Forget the cached token (Graph answered 401 with it).
    func invalidate() async
}

/// An access token and when it stops working.
struct CachedToken: Sendable {
    var value: String
    var expiresAt: Date
    var lifetime: TimeInterval

    /// Renew when a tenth of the lifetime (at least 60 s) is left, so no call carries a token about to expire.
    func isFresh(at now: Date) -> Bool {
        expiresAt.timeIntervalSince(now) > max(60, lifetime / 10)
    }
}

/// Keeps one access token and lets concurrent callers share a single refresh.
actor TokenCache {
    private var cached: CachedToken?
    private var inFlight: Task<CachedToken, any Error>?
    /// The wall clock a token's freshness is judged by.
    let now: @Sendable () -> Date

    init(now: @escaping @Sendable () -> Date) { self.now = now }

    /// Waiting is cancellable: a cancelled caller cancels the shared request (callers are only
    /// cancelled when the bridge stops, and a sign-in that hangs must not hold the stop up); any
    /// other caller waiting on it then gets the cancellation error too and asks again next time.
    func token(fetch: @escaping @Sendable () async throws -> CachedToken) async throws -> String {
        if let cached, cached.isFresh(at: now()) { return cached.value }
        if let inFlight { return try await Self.value(of: inFlight).value }
        let task = Task { try await fetch() }
        inFlight = task
        defer { inFlight = nil }
        let token = try await Self.value(of: task)
        cached = token
        return token.value
    }

    private static func value(of task: Task<CachedToken, any Error>) async throws -> CachedToken {
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    func invalidate() { cached = nil }
}

/// The identity platform's token response, and its error form.
struct TokenResponse: Decodable {
    var access_token: String?
    var expires_in: Double?
    var refresh_token: String?
    var error: String?
    var error_description: String?
}

/// Posts a form to the identity platform and returns the token response, or a `GraphError(.authentication)`.
func requestToken(http: any OutgoingTransport, url: String, form: [(String, String)], logger: Logger) async throws -> TokenResponse {
    let body = Array(FormEncoding.encode(form).utf8)
    let response: HTTPResponse
    do {
        response = try await http.execute(HTTPRequest(
            method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
            body: body, timeout: .seconds(30)
        ))
    } catch let error as TransportError {
        GraphClient.count("token", status: "transport")
        throw GraphError(kind: .transport, status: 0, code: nil, message: "token request to \(url) failed: \(error)", requestID: nil)
    }
    GraphClient.count("token", status: String(response.status))
    let decoded = try? JSONDecoder().decode(TokenResponse.self, from: Data(response.body))
    let requestID = response.header("x-ms-request-id") ?? response.requestID
    guard (200..<300).contains(response.status), let decoded, decoded.access_token != nil else {
        let kind: GraphError.Kind = response.status == 429 || response.status >= 500 ? .throttled : .authentication
        let message = decoded?.error_description.map { String($0.prefix(400)) } ?? "token endpoint answered \(response.status)"
        logger.error("sign-in failed", metadata: ["bridge.status": "\(response.status)", "bridge.graph_error": "\(decoded?.error ?? "-")", "bridge.request_id": "\(requestID ?? "-")"])
        throw GraphError(kind: kind, status: response.status, code: decoded?.error, message: message, requestID: requestID, retryAfter: response.retryAfter)
    }
    return decoded
}

/// App-only tokens: the client credentials grant with a secret or a certificate assertion.
public final class ClientCredentialsTokenProvider: AccessTokenProvider {
    public enum Credential: Sendable {
        case secret(String)
        case certificate(CertificateAssertion)
    }

    let endpoints: GraphEndpoints
    let tenant: String
    let clientID: String
    let credential: Credential
    let http: any OutgoingTransport
    let logger: Logger
    let now: @Sendable () -> Date
    let cache: TokenCache

    /// - Parameter now: the wall clock that stamps a token's expiry, judges when to renew it
    ///   (``CachedToken/isFresh(at:)``) and dates a certificate assertion.
    public init(
        endpoints: GraphEndpoints, tenant: String, clientID: String, credential: Credential, http: any OutgoingTransport, logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.endpoints = endpoints
        self.tenant = tenant
        self.clientID = clientID
        self.credential = credential
        self.http = http
        self.logger = logger
        self.now = now
        self.cache = TokenCache(now: now)
    }

    public func accessToken() async throws -> String {
        try await cache.token { try await self.fetch() }
    }

    public func invalidate() async { await cache.invalidate() }

    private func fetch() async throws -> CachedToken {
        let tokenURL = endpoints.tokenURL(tenant: tenant)
        var form: [(String, String)] = [("client_id", clientID), ("scope", endpoints.defaultScope), ("grant_type", "client_credentials")]
        switch credential {
        case .secret(let secret):
            form.append(("client_secret", secret))
        case .certificate(let assertion):
            form.append(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
            form.append(("client_assertion", try assertion.make(clientID: clientID, audience: tokenURL, now: now())))
        }
        let response = try await requestToken(http: http, url: tokenURL, form: form, logger: logger)
        let lifetime = response.expires_in ?? 3600
        logger.debug("signed in to Graph", metadata: ["bridge.expires_in": "\(Int(lifetime))"])
        return CachedToken(value: response.access_token ?? "", expiresAt: now().addingTimeInterval(lifetime), lifetime: lifetime)
    }
}

/// Where a delegated sign-in keeps its refresh token (the state store, mode 0600).
public protocol RefreshTokenStorage: Sendable {
    func loadRefreshToken() async throws -> String?
    func saveRefreshToken(_ token: String) async throws
}

/// Delegated tokens from the refresh token `graph-bridge login` stored; every rotated refresh
/// token Graph returns replaces the stored one.
public final class RefreshTokenProvider: AccessTokenProvider {
    let endpoints: GraphEndpoints
    let tenant: String
    let clientID: String
    let scopes: String
    let storage: any RefreshTokenStorage
    let http: any OutgoingTransport
    let logger: Logger
    let now: @Sendable () -> Date
    let cache: TokenCache

    /// - Parameter now: the wall clock that stamps a token's expiry and judges when to renew it
    ///   (``CachedToken/isFresh(at:)``).
    public init(
        endpoints: GraphEndpoints, tenant: String, clientID: String, scopes: String, storage: any RefreshTokenStorage, http: any OutgoingTransport,
        logger: Logger, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.endpoints = endpoints
        self.tenant = tenant
        self.clientID = clientID
        self.scopes = scopes
        self.storage = storage
        self.http = http
        self.logger = logger
        self.now = now
        self.cache = TokenCache(now: now)
    }

    public func accessToken() async throws -> String {
        try await cache.token { try await self.fetch() }
    }

    public func invalidate() async { await cache.invalidate() }

    private func fetch() async throws -> CachedToken {
        guard let refreshToken = try await storage.loadRefreshToken() else {
            throw GraphError(kind: .authentication, status: 0, code: "no_refresh_token", message: "no delegated sign-in stored: run `graph-bridge login` first", requestID: nil)
        }
        let response = try await requestToken(
            http: http, url: endpoints.tokenURL(tenant: tenant),
            form: [("client_id", clientID), ("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("scope", scopes)],
            logger: logger
        )
        if let rotated = response.refresh_token, rotated != refreshToken {
            try await storage.saveRefreshToken(rotated)
        }
        let lifetime = response.expires_in ?? 3600
        return CachedToken(value: response.access_token ?? "", expiresAt: now().addingTimeInterval(lifetime), lifetime: lifetime)
    }
}

/// `application/x-www-form-urlencoded` bodies.
enum FormEncoding {
    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
