/// A failed Graph or identity-platform call, with what Graph said and its `request-id` for support.
public struct GraphError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// 404 `ResourceNotFound`/`ErrorItemNotFound`: the thing is gone.
        case notFound
        /// 409: already exists.
        case conflict
        /// 401: bad or expired credentials or token.
        case unauthorized
        /// 403: missing permission, admin consent, or a quota.
        case forbidden
        /// 400: Graph refused the request (including a failed validation handshake).
        case badRequest
        /// 429 or 5xx: try again later.
        case throttled
        case serverError
        /// The network failed before Graph answered.
        case transport
        /// The sign-in failed (`invalid_client`, `invalid_grant`, ...).
        case authentication
        case other
    }

    public var kind: Kind
    /// HTTP status (0 when no answer came).
    public var status: Int
    /// Graph's `error.code` or the identity platform's `error`.
    public var code: String?
    public var message: String
    public var requestID: String?
    /// How long Graph asked to wait.
    public var retryAfter: Duration?

    public init(kind: Kind, status: Int, code: String?, message: String, requestID: String?, retryAfter: Duration? = nil) {
        self.kind = kind
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
        self.retryAfter = retryAfter
    }

    /// Worth retrying later (throttling, server errors, network).
    public var isTransient: Bool { kind == .throttled || kind == .serverError || kind == .transport }

    public var description: String {
        var text = status > 0 ? "\(status)" : "no answer"
        if let code { text += " \(code)" }
        text += ": \(message)"
        if let requestID { text += " (request-id \(requestID))" }
        return text
    }

    static func kind(forStatus status: Int) -> Kind {
        switch status {
        case 400: return .badRequest
        case 401: return .unauthorized
        case 403: return .forbidden
        case 404, 410: return .notFound
        case 409: return .conflict
        case 408, 429: return .throttled
        case 500...599: return .serverError
        default: return .other
        }
    }
}
