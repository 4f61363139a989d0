public import Transport
import Foundation
public import Logging

/// The device code flow (`graph-bridge login`): show a code, poll until the user signed in. The
/// polling interval and the code's lifetime are measured on `clock` (the system's in the bridge).
public struct DeviceCodeFlow: Sendable {
    public struct Prompt: Sendable {
        public var userCode: String
        public var verificationURI: String
        public var message: String
        public var expiresIn: Int
        public var interval: Int
        let deviceCode: String
    }

    public struct Tokens: Sendable {
        public var accessToken: String
        public var refreshToken: String?
    }

    let endpoints: GraphEndpoints
    let tenant: String
    let clientID: String
    let scopes: String
    let http: any OutgoingTransport
    let logger: Logger
    let clock: any Clock<Duration>

    /// - Parameter clock: what ``poll(_:)`` waits on between polls and measures the code's lifetime with.
    public init(
        endpoints: GraphEndpoints, tenant: String, clientID: String, scopes: String, http: any OutgoingTransport, logger: Logger,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.endpoints = endpoints
        self.tenant = tenant
        self.clientID = clientID
        self.scopes = scopes
        self.http = http
        self.logger = logger
        self.clock = clock
    }

    public func start() async throws -> Prompt {
        struct Answer: Decodable {
            var device_code: String?
            var user_code: String?
            var verification_uri: String?
            var message: String?
            var expires_in: Int?
            var interval: Int?
            var error: String?
            var error_description: String?
        }
        let response = try await http.execute(HTTPRequest(
            method: "POST", url: endpoints.deviceCodeURL(tenant: tenant),
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: Array(FormEncoding.encode([("client_id", clientID), ("scope", scopes)]).utf8)
        ))
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(response.body)), let deviceCode = answer.device_code, let userCode = answer.user_code
        else {
            throw GraphError(kind: .authentication, status: response.status, code: nil, message: "the device code request failed (\(response.status)): \(response.bodyText.prefix(300))", requestID: response.requestID)
        }
        let uri = answer.verification_uri ?? "https://microsoft.com/devicelogin"
        return Prompt(
            userCode: userCode, verificationURI: uri,
            message: answer.message ?? "To sign in, open \(uri) and enter the code \(userCode).",
            expiresIn: answer.expires_in ?? 900, interval: answer.interval ?? 5, deviceCode: deviceCode
        )
    }

    /// Polls every `interval` seconds of `clock`; `slow_down` adds 5 s; `authorization_pending` keeps
    /// going; `expired_token`, `authorization_declined` and `bad_verification_code` stop with an
    /// error. Once `expiresIn` seconds have passed it stops with `expired_token`, and it does not
    /// poll at or after that moment (the code has expired).
    public func poll(_ prompt: Prompt) async throws -> Tokens {
        let clock: any Clock<Duration> = self.clock
        let elapsed = Self.stopwatch(clock)
        var interval = Duration.seconds(max(1, prompt.interval))
        let lifetime = Duration.seconds(max(0, prompt.expiresIn))
        while true {
            let now = elapsed()
            guard now + interval < lifetime else {
                try await clock.sleep(for: lifetime - now)
                break
            }
            try await clock.sleep(for: interval)
            let response = try await http.execute(HTTPRequest(
                method: "POST", url: endpoints.tokenURL(tenant: tenant),
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: Array(FormEncoding.encode([
                    ("client_id", clientID), ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", prompt.deviceCode),
                ]).utf8)
            ))
            let answer = try? JSONDecoder().decode(TokenResponse.self, from: Data(response.body))
            if (200..<300).contains(response.status), let access = answer?.access_token {
                return Tokens(accessToken: access, refreshToken: answer?.refresh_token)
            }
            switch answer?.error {
            case "authorization_pending": continue
            case "slow_down": interval += .seconds(5)
            case let code:
                throw GraphError(kind: .authentication, status: response.status, code: code, message: answer?.error_description ?? "sign-in failed", requestID: response.requestID)
            }
        }
        throw GraphError(kind: .authentication, status: 0, code: "expired_token", message: "the code expired before sign-in finished; run login again", requestID: nil)
    }

    /// Time on `clock` since the call.
    private static func stopwatch<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> Duration {
        let origin = clock.now
        return { origin.duration(to: clock.now) }
    }
}
