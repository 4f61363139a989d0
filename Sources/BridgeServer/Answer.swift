import BridgeCore
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore

/// What the public listener answers a notification POST: the status, a one-line text for the
/// refusals, `Retry-After` on a 503. Written by Hummingbird's handler as a `Response`, and by
/// `NotificationChannelHandler` as HTTP parts, with the same headers either way.
struct Answer: Sendable {
    var status: HTTPResponse.Status
    var text: String?
    var retryAfter: Int?

    init(status: HTTPResponse.Status, text: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.text = text
        self.retryAfter = retryAfter
    }

    /// 202, 400 with the reason, or 503 with the reason and `Retry-After: 5`.
    init(_ outcome: NotificationIntake.Outcome) {
        switch outcome.status {
        case 202: self.init(status: .accepted)
        case 400: self.init(status: .badRequest, text: (outcome.reason ?? "malformed notification") + "\n")
        default: self.init(status: .serviceUnavailable, text: (outcome.reason ?? "unavailable") + "\n", retryAfter: 5)
        }
    }

    /// The 413 for a body over `server.maxBodyBytes`, counted and logged (both paths refuse it).
    static func tooLarge(_ limit: Int, endpoint: NotificationIntake.Endpoint, logger: Logger) -> Answer {
        Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "too_large")]).increment()
        logger.warning("rejected a notification body over server.maxBodyBytes", metadata: ["bridge.limit": "\(limit)"])
        return Answer(status: .contentTooLarge, text: "body larger than \(limit) bytes\n")
    }

    var body: ByteBuffer? { text.map { ByteBuffer(string: $0) } }

    /// An answer without a body: only its length (made once; a 202 is most answers).
    private static let emptyFields: HTTPFields = [.contentLength: "0"]

    /// The headers but `Date` and `Server` (Hummingbird adds those to its responses).
    var headerFields: HTTPFields {
        guard let text else { return Self.emptyFields }
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8", .xContentTypeOptions: "nosniff"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        headers[.contentLength] = String(text.utf8.count)
        return headers
    }

    var response: Response {
        var headers = headerFields
        headers[.contentLength] = nil  // Hummingbird sets it from the body
        return Response(status: status, headers: headers, body: body.map { ResponseBody(byteBuffer: $0) } ?? ResponseBody())
    }
}
