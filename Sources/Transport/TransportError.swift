/// Why a transfer failed. HTTP error statuses are not errors: they come back as ``HTTPResponse``.
/// SMTP error replies are: an SMTP send that the server refuses fails with
/// ``Kind/smtpRejected`` and the reply code in ``smtpReplyCode``.
///
/// ``kind`` has a bounded set of values, fit for a metric label; ``message`` has the detail.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: String, Sendable {
        /// The host name did not resolve.
        case couldNotResolve
        /// No connection: refused, unreachable, or the connect timeout passed.
        case couldNotConnect
        /// The transfer took longer than the request's timeout.
        case timedOut
        /// TLS handshake or certificate verification failed.
        case tls
        /// The connection failed while sending the request.
        case sendFailed
        /// The connection failed, closed or sent something that isn't HTTP while receiving.
        case receiveFailed
        /// The response body exceeded transport's response size limit (`CurlClient.Configuration.maxResponseBytes`).
        case tooLarge
        /// The request can't be sent as given (bad URL, method or header).
        case invalidRequest
        /// The client was shut down before the transfer finished.
        case shutdown
        /// The SMTP server answered a command (greeting, STARTTLS, AUTH, MAIL, RCPT, DATA, or
        /// the end of the message) with a 4xx or 5xx reply; ``TransportError/smtpReplyCode`` has it.
        case smtpRejected
        /// Anything else libcurl reported.
        case other
    }

    public var kind: Kind
    /// What happened: libcurl's error text and code where libcurl reported it.
    public var message: String
    /// The SMTP server's reply code (`450`, `550`, ...) when ``kind`` is ``Kind/smtpRejected``.
    public var smtpReplyCode: Int?

    public init(kind: Kind, message: String, smtpReplyCode: Int? = nil) {
        self.kind = kind
        self.message = message
        self.smtpReplyCode = smtpReplyCode
    }

    /// Whether trying again later may succeed (resolve, connect, timeout, send, receive
    /// failures, and SMTP 4xx replies, which RFC 5321 calls transient).
    public var isTransient: Bool {
        switch kind {
        case .couldNotResolve, .couldNotConnect, .timedOut, .sendFailed, .receiveFailed:
            return true
        case .smtpRejected:
            return (400..<500).contains(smtpReplyCode ?? 0)
        case .tls, .tooLarge, .invalidRequest, .shutdown, .other:
            return false
        }
    }

    public var description: String {
        "TransportError.\(kind.rawValue): \(message)"
    }
}

extension TransportError {
    package static func invalidRequest(_ reason: String) -> TransportError {
        TransportError(kind: .invalidRequest, message: reason)
    }

    package static let shutdown = TransportError(kind: .shutdown, message: "the HTTP client was shut down")

    package static func tooLarge(limit: Int) -> TransportError {
        TransportError(kind: .tooLarge, message: "response body larger than \(limit) bytes; raise maxResponseBytes if expected")
    }
}
