import Foundation
import GraphClient
import Logging
import Synchronization
import Testing
import TestSupport
import Transport

/// The Graph client's retries on a clock the test moves: how long it waits after a 429, a 503 or
/// a transport failure, and when it gives up. The transport answers from a script (the Graph
/// simulator's end-to-end tests cover the same calls over real HTTP).
@Suite("Graph client retries on an injected clock")
struct GraphClientRetryTests {
    /// Answers each request with the next entry of its script and counts the requests.
    final class ScriptedTransport: OutgoingTransport {
        private let script: Mutex<[Result<HTTPResponse, TransportError>]>
        let requests = Tally()

        init(_ script: [Result<HTTPResponse, TransportError>]) { self.script = Mutex(script) }

        func execute(_ request: HTTPRequest, tls: TLSOptions?) async throws -> HTTPResponse {
            let next = script.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            requests.add()
            guard let next else { throw TransportError(kind: .other, message: "the script has no more answers") }
            return try next.get()
        }

        func sendMail(_ envelope: SMTPEnvelope, message: [UInt8]) async throws -> SMTPResult {
            throw TransportError(kind: .invalidRequest, message: "no mail here")
        }
    }

    struct FixedToken: AccessTokenProvider {
        func accessToken() async throws -> String { "token" }
        func invalidate() async {}
    }

    static func client(_ transport: ScriptedTransport, clock: ManualTestClock, maxRetryWait: Duration = .seconds(60)) -> GraphClient {
        GraphClient(
            endpoints: GraphEndpoints(authority: "http://127.0.0.1:9", graphBase: "http://127.0.0.1:9/v1.0"), tokens: FixedToken(),
            http: transport, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), maxRetryWait: maxRetryWait,
            clock: clock)
    }

    @Test("a 429 with Retry-After: 30 is tried again at 30 s on the client's clock, not before")
    func retryAfter() async throws {
        let clock = ManualTestClock(start: Date())
        let transport = ScriptedTransport([
            .success(HTTPResponse(status: 429, headers: [("Retry-After", "30")])), .success(HTTPResponse(status: 200, body: Array("{}".utf8))),
        ])
        let call = Task { try await Self.client(transport, clock: clock).send("GET", "/subscriptions") }
        await clock.sleepers(1, until: .seconds(30))
        #expect(transport.requests.count == 1)
        clock.advance(by: .milliseconds(29_999))
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(30)], "still waiting at 29.999 s")
        #expect(transport.requests.count == 1)
        clock.advance(by: .milliseconds(1))
        #expect(try await call.value.status == 200)
        #expect(transport.requests.count == 2)
    }

    @Test("a Retry-After longer than maxRetryWait waits maxRetryWait")
    func retryAfterCapped() async throws {
        let clock = ManualTestClock(start: Date())
        let transport = ScriptedTransport([
            .success(HTTPResponse(status: 503, headers: [("Retry-After", "3600")])), .success(HTTPResponse(status: 204)),
        ])
        let call = Task { try await Self.client(transport, clock: clock, maxRetryWait: .seconds(60)).send("DELETE", "/subscriptions/x") }
        await clock.sleepers(1, until: .seconds(60))
        clock.advance(by: .seconds(60))
        #expect(try await call.value.status == 204)
    }

    @Test("transport failures are tried again after 1 s, 2 s and 4 s; the fourth is thrown")
    func backoff() async throws {
        let clock = ManualTestClock(start: Date())
        let refused = TransportError(kind: .couldNotConnect, message: "refused")
        let transport = ScriptedTransport(Array(repeating: .failure(refused), count: 4))
        let call = Task { try await Self.client(transport, clock: clock).send("GET", "/subscriptions") }
        for (wait, until) in [(1, 1), (2, 3), (4, 7)] as [(Int64, Int64)] {
            await clock.sleepers(1, until: .seconds(until))
            clock.advance(by: .seconds(wait))
        }
        let error = await #expect(throws: GraphError.self) { try await call.value }
        #expect(error?.kind == .transport)
        #expect(transport.requests.count == 4)
        #expect(clock.now.offset == .seconds(7))
    }
}
