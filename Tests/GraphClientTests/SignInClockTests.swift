import Foundation
import GraphClient
import Logging
import Synchronization
import TestSupport
import Testing
import Transport

/// Sign-in on clocks the test moves: when a cached access token is renewed, and how the device
/// code flow paces its polls and gives up. The identity platform answers from a script
/// (`GraphClientIntegrationTests` runs the same flows against the simulator over real HTTP).
@Suite("sign-in timing on an injected clock")
struct SignInClockTests {
    typealias ScriptedTransport = GraphClientRetryTests.ScriptedTransport

    static let endpoints = GraphEndpoints(authority: "http://127.0.0.1:9", graphBase: "http://127.0.0.1:9/v1.0")
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func json(_ status: Int, _ text: String) -> Result<HTTPResponse, TransportError> {
        .success(HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(text.utf8)))
    }

    static func token(_ value: String, lifetime: Int) -> Result<HTTPResponse, TransportError> {
        json(200, #"{"access_token": "\#(value)", "token_type": "Bearer", "expires_in": \#(lifetime)}"#)
    }

    // MARK: Access tokens

    @Test(
        "an app token is reused until a tenth of its lifetime (at least 60 s) is left, and renewed from then on",
        arguments: [(3600, 3240), (300, 240)] as [(Int, Int)])
    func appTokenRenewal(lifetime: Int, renewAt: Int) async throws {
        let clock = ManualTestClock(start: Self.start)
        let transport = ScriptedTransport([Self.token("first", lifetime: lifetime), Self.token("second", lifetime: lifetime)])
        let tokens = ClientCredentialsTokenProvider(
            endpoints: Self.endpoints, tenant: "tenant", clientID: "client", credential: .secret("secret"), http: transport, logger: Self.quiet,
            now: { clock.date })
        #expect(try await tokens.accessToken() == "first")
        #expect(transport.requests.count == 1)

        // A tenth of the lifetime, but at least 60 s, before the expiry: 360 s of 3600, 60 s of 300.
        clock.advance(by: .seconds(renewAt) - .milliseconds(1))
        #expect(try await tokens.accessToken() == "first", "still fresh 1 ms before the renewal point")
        #expect(transport.requests.count == 1)

        clock.advance(by: .milliseconds(1))
        #expect(try await tokens.accessToken() == "second")
        #expect(transport.requests.count == 2)
        // The new token's lifetime starts at the clock's now, not at the first sign-in.
        clock.advance(by: .seconds(renewAt) - .milliseconds(1))
        #expect(try await tokens.accessToken() == "second")
        #expect(transport.requests.count == 2)
    }

    /// Refresh tokens in memory.
    final class MemoryRefreshTokens: RefreshTokenStorage {
        private let token = Mutex<String?>("refresh-1")
        func loadRefreshToken() async throws -> String? { token.withLock { $0 } }
        func saveRefreshToken(_ token: String) async throws { self.token.withLock { $0 = token } }
    }

    @Test("a delegated token is reused until 60 s before it expires (lifetime 600 s) and renewed with the stored refresh token then")
    func delegatedTokenRenewal() async throws {
        let clock = ManualTestClock(start: Self.start)
        let transport = ScriptedTransport([
            Self.json(200, #"{"access_token": "first", "expires_in": 600, "refresh_token": "refresh-2"}"#),
            Self.json(200, #"{"access_token": "second", "expires_in": 600, "refresh_token": "refresh-3"}"#),
        ])
        let storage = MemoryRefreshTokens()
        let tokens = RefreshTokenProvider(
            endpoints: Self.endpoints, tenant: "tenant", clientID: "client", scopes: "offline_access", storage: storage, http: transport,
            logger: Self.quiet, now: { clock.date })
        #expect(try await tokens.accessToken() == "first")
        #expect(try await storage.loadRefreshToken() == "refresh-2")
        clock.advance(by: .milliseconds(539_999))
        #expect(try await tokens.accessToken() == "first")
        #expect(transport.requests.count == 1)
        clock.advance(by: .milliseconds(1))
        #expect(try await tokens.accessToken() == "second")
        #expect(try await storage.loadRefreshToken() == "refresh-3")
        #expect(transport.requests.count == 2)
    }

    // MARK: Device code flow

    static func deviceCode(interval: Int, expiresIn: Int) -> Result<HTTPResponse, TransportError> {
        json(
            200,
            #"{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": \#(expiresIn), "interval": \#(interval)}"#
        )
    }

    static func tokenError(_ code: String) -> Result<HTTPResponse, TransportError> {
        json(400, #"{"error": "\#(code)", "error_description": "\#(code)"}"#)
    }

    static func flow(_ transport: ScriptedTransport, clock: ManualTestClock) -> DeviceCodeFlow {
        DeviceCodeFlow(
            endpoints: endpoints, tenant: "tenant", clientID: "client", scopes: "offline_access", http: transport, logger: quiet, clock: clock)
    }

    @Test("the device code flow polls every interval, 5 s slower after slow_down, and returns the tokens once the user signed in")
    func devicePolling() async throws {
        let clock = ManualTestClock(start: Self.start)
        let transport = ScriptedTransport([
            Self.deviceCode(interval: 5, expiresIn: 900),
            Self.tokenError("authorization_pending"), Self.tokenError("slow_down"), Self.tokenError("authorization_pending"),
            Self.json(200, #"{"access_token": "access", "refresh_token": "refresh", "expires_in": 3600}"#),
        ])
        let flow = Self.flow(transport, clock: clock)
        let prompt = try await flow.start()
        let polling = Task { try await flow.poll(prompt) }
        // Polls at 5 (pending), 10 (slow_down), 20 (pending) and 30 s (signed in).
        for (polled, until, wait) in [(0, 5, 5), (1, 10, 5), (2, 20, 10), (3, 30, 10)] as [(Int, Int64, Int64)] {
            try #require(await clock.sleeper { _ in true }.offset == .seconds(until))
            #expect(transport.requests.count == 1 + polled)
            clock.advance(by: .seconds(wait) - .milliseconds(1))
            #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(until)], "no poll 1 ms before \(until) s")
            #expect(transport.requests.count == 1 + polled)
            clock.advance(by: .milliseconds(1))
        }
        let tokens = try await polling.value
        #expect(tokens.accessToken == "access")
        #expect(tokens.refreshToken == "refresh")
        #expect(transport.requests.count == 5)
    }

    @Test("the device code flow gives up when the code expires (12 s): polls at 5 and 10 s, none at or after 12 s")
    func deviceDeadline() async throws {
        let clock = ManualTestClock(start: Self.start)
        let transport = ScriptedTransport([
            Self.deviceCode(interval: 5, expiresIn: 12), Self.tokenError("authorization_pending"), Self.tokenError("authorization_pending"),
            Self.tokenError("authorization_pending"),
        ])
        let flow = Self.flow(transport, clock: clock)
        let prompt = try await flow.start()
        let polling = Task { try await flow.poll(prompt) }
        try #require(await clock.sleeper { _ in true }.offset == .seconds(5))
        clock.advance(by: .seconds(5))
        try #require(await clock.sleeper { _ in true }.offset == .seconds(10))
        clock.advance(by: .seconds(5))
        // The next poll would be at 15 s, past the code's lifetime: it waits for the expiry instead.
        try #require(await clock.sleeper { _ in true }.offset == .seconds(12))
        #expect(transport.requests.count == 3)
        clock.advance(by: .milliseconds(1999))
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(12)], "still waiting at 11.999 s")
        clock.advance(by: .milliseconds(1))
        let error = await #expect(throws: GraphError.self) { try await polling.value }
        #expect(error?.code == "expired_token")
        #expect(transport.requests.count == 3, "no poll once the code expired")
    }

    @Test("a declined sign-in stops the polling at once, with Graph's error")
    func deviceDeclined() async throws {
        let clock = ManualTestClock(start: Self.start)
        let transport = ScriptedTransport([Self.deviceCode(interval: 5, expiresIn: 900), Self.tokenError("authorization_declined")])
        let flow = Self.flow(transport, clock: clock)
        let prompt = try await flow.start()
        let polling = Task { try await flow.poll(prompt) }
        try #require(await clock.sleeper { _ in true }.offset == .seconds(5))
        clock.advance(by: .seconds(5))
        let error = await #expect(throws: GraphError.self) { try await polling.value }
        #expect(error?.code == "authorization_declined")
        #expect(clock.pendingDeadlines.isEmpty)
    }
}
