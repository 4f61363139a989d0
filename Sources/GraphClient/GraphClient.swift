public import CurlKit
import Foundation
public import Logging

/// Calls Microsoft Graph: adds the bearer token, retries throttling (429/503/504, honouring
/// `Retry-After`) and one 401 with a fresh token, and turns every failure into a ``GraphError``
/// logged with Graph's code, message and `request-id`.
public final class GraphClient: Sendable {
    public let endpoints: GraphEndpoints
    let tokens: any AccessTokenProvider
    let http: CurlClient
    let logger: Logger
    let maxRetries: Int
    let maxRetryWait: Duration

    public init(endpoints: GraphEndpoints, tokens: any AccessTokenProvider, http: CurlClient, logger: Logger, maxRetries: Int = 3, maxRetryWait: Duration = .seconds(60)) {
        self.endpoints = endpoints
        self.tokens = tokens
        self.http = http
        self.logger = logger
        self.maxRetries = maxRetries
        self.maxRetryWait = maxRetryWait
    }

    /// Sends a request to `path` (relative to the Graph base, e.g. `/subscriptions`) or to an
    /// absolute URL (`@odata.nextLink`); returns the 2xx response or throws `GraphError`.
    public func send(_ method: String, _ path: String, json body: [UInt8]? = nil, timeout: Duration = .seconds(30)) async throws -> HTTPResponse {
        let url = path.hasPrefix("http://") || path.hasPrefix("https://") ? path : endpoints.graphBase + path
        var attempt = 0
        var refreshedToken = false
        while true {
            attempt += 1
            let token = try await tokens.accessToken()
            var headers: [(name: String, value: String)] = [("Authorization", "Bearer \(token)"), ("Accept", "application/json")]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let response: HTTPResponse
            do {
                response = try await http.execute(HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: timeout))
            } catch let error as CurlError {
                let failure = GraphError(kind: .transport, status: 0, code: error.kind.rawValue, message: "\(method) \(path): \(error)", requestID: nil)
                if error.isTransient, attempt <= maxRetries {
                    try await Task.sleep(for: backoff(attempt))
                    continue
                }
                throw failure
            }
            if (200..<300).contains(response.status) { return response }

            let error = Self.error(from: response, method: method, path: path)
            logger.warning("Graph call failed", metadata: [
                "bridge.call": "\(method) \(path)", "bridge.status": "\(response.status)", "bridge.graph_code": "\(error.code ?? "-")",
                "bridge.request_id": "\(error.requestID ?? "-")", "error": "\(error.message)",
            ])
            if response.status == 401, !refreshedToken {
                refreshedToken = true
                await tokens.invalidate()
                continue
            }
            if [429, 503, 504].contains(response.status), attempt <= maxRetries {
                let wait = min(response.retryAfter ?? backoff(attempt), maxRetryWait)
                try await Task.sleep(for: wait)
                continue
            }
            throw error
        }
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
