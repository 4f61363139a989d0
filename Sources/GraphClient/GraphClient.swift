public import Transport
import Foundation
public import Logging
import Metrics

/// Calls Microsoft Graph: adds the bearer token, retries throttling (429/503/504, honouring
/// `Retry-After`) and one 401 with a fresh token, and turns every failure into a ``GraphError``
/// logged with Graph's code, message and `request-id`.
public final class GraphClient: Sendable {
    public let endpoints: GraphEndpoints
    let tokens: any AccessTokenProvider
    let http: any OutgoingTransport
    let logger: Logger
    let maxRetries: Int
    let maxRetryWait: Duration
    /// What the waits between retries run on.
    let clock: any Clock<Duration>

    /// - Parameters:
    ///   - http: the transport (in the daemon the shared `CurlClient`).
    ///   - clock: what the waits between retries (backoff, `Retry-After`) run on; a test moves its own.
    public init(
        endpoints: GraphEndpoints, tokens: any AccessTokenProvider, http: any OutgoingTransport, logger: Logger, maxRetries: Int = 3,
        maxRetryWait: Duration = .seconds(60), clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.endpoints = endpoints
        self.tokens = tokens
        self.http = http
        self.logger = logger
        self.maxRetries = maxRetries
        self.maxRetryWait = maxRetryWait
        self.clock = clock
    }

    /// The same client (endpoints, tokens, HTTP client), retrying throttling, server errors and
    /// transport failures at most `maxRetries` times (0: never): for a caller that waits out
    /// `Retry-After` on its own terms, without holding what it holds meanwhile.
    public func retrying(atMost maxRetries: Int) -> GraphClient {
        GraphClient(endpoints: endpoints, tokens: tokens, http: http, logger: logger, maxRetries: maxRetries, maxRetryWait: maxRetryWait, clock: clock)
    }

    /// Sends a request to `path` (relative to the Graph base, e.g. `/subscriptions`) or to an
    /// absolute URL (`@odata.nextLink`); returns the 2xx response or throws `GraphError`.
    ///
    /// Every attempt is counted in `graph_bridge_graph_requests_total{operation,status}` (status
    /// `transport` when no answer came) and logged with Graph's `request-id` and the
    /// `client-request-id` the bridge sent (one per call, the same on its retries): at debug level
    /// when it worked, as a warning when it did not.
    public func send(_ method: String, _ path: String, operation: String = "other", json body: [UInt8]? = nil, timeout: Duration = .seconds(30)) async throws
        -> HTTPResponse
    {
        let url = path.hasPrefix("http://") || path.hasPrefix("https://") ? path : endpoints.graphBase + path
        let clientRequestID = UUID().uuidString.lowercased()
        var attempt = 0
        var refreshedToken = false
        while true {
            attempt += 1
            let token = try await tokens.accessToken()
            var headers: [(name: String, value: String)] = [
                ("Authorization", "Bearer \(token)"), ("Accept", "application/json"), ("client-request-id", clientRequestID),
            ]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let response: HTTPResponse
            do {
                response = try await http.execute(HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: timeout))
            } catch let error as TransportError {
                Self.count(operation, status: "transport")
                let failure = GraphError(kind: .transport, status: 0, code: error.kind.rawValue, message: "\(method) \(path): \(error)", requestID: nil)
                logger.warning("Graph call got no answer", metadata: [
                    "bridge.call": "\(method) \(path)", "bridge.client_request_id": "\(clientRequestID)", "error": "\(error)",
                ])
                if error.isTransient, attempt <= maxRetries {
                    try await clock.sleep(for: backoff(attempt))
                    continue
                }
                throw failure
            }
            Self.count(operation, status: String(response.status))
            if (200..<300).contains(response.status) {
                logger.debug("Graph call", metadata: [
                    "bridge.call": "\(method) \(path)", "bridge.status": "\(response.status)", "bridge.request_id": "\(response.requestID ?? "-")",
                    "bridge.client_request_id": "\(clientRequestID)",
                ])
                return response
            }

            let error = Self.error(from: response, method: method, path: path)
            logger.warning("Graph call failed", metadata: [
                "bridge.call": "\(method) \(path)", "bridge.status": "\(response.status)", "bridge.graph_code": "\(error.code ?? "-")",
                "bridge.request_id": "\(error.requestID ?? "-")", "bridge.client_request_id": "\(clientRequestID)", "error": "\(error.message)",
            ])
            if response.status == 401, !refreshedToken {
                refreshedToken = true
                await tokens.invalidate()
                continue
            }
            if [429, 503, 504].contains(response.status), attempt <= maxRetries {
                let wait = min(response.retryAfter ?? backoff(attempt), maxRetryWait)
                try await clock.sleep(for: wait)
                continue
            }
            throw error
        }
    }

    /// `graph_bridge_graph_requests_total{operation,status}`, one per attempt.
    static func count(_ operation: String, status: String) {
        Counter(label: "graph_bridge_graph_requests_total", dimensions: [("operation", operation), ("status", status)]).increment()
    }

    private func backoff(_ attempt: Int) -> Duration { .milliseconds(500 * (1 << min(attempt, 6))) }

    /// Graph's error body `{"error": {"code", "message", "innerError": {"request-id"}}}`.
    static func error(from response: HTTPResponse, method: String, path: String) -> GraphError {
        struct Body: Decodable {
            struct Inner: Decodable {
                var code: String?
                var message: String?
                var innerError: [String: String]?
            }
            var error: Inner?
        }
        let body = try? JSONDecoder().decode(Body.self, from: Data(response.body))
        let requestID = response.requestID ?? body?.error?.innerError?["request-id"]
        let message = body?.error?.message ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        return GraphError(
            kind: GraphError.kind(forStatus: response.status),
            status: response.status,
            code: body?.error?.code,
            message: message.isEmpty ? "\(method) \(path) answered \(response.status)" : message,
            requestID: requestID,
            retryAfter: response.retryAfter
        )
    }
}
