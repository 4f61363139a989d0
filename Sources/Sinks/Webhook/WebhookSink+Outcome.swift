import SinkAPI
import Foundation

extension WebhookSink {
    /// What an answer means: nil for success, else a retryable or permanent ``SinkError``.
    static func failure(status: Int, retryAfter: Duration?, body: [UInt8], target: String) -> SinkError? {
        // Built only for a failure: most answers are 2xx, and the excerpt is work per answer.
        func message() -> String {
            let excerpt = responseExcerpt(body)
            return excerpt.isEmpty ? "\(target) answered HTTP \(status)" : "\(target) answered HTTP \(status): \(excerpt)"
        }
        switch status {
        case 200..<300:
            return nil
        case 408, 429, 500..<600:
            return .retryable(message(), after: retryAfter)
        case 300..<400:
            return .permanent(message() + " (redirects are not followed: set url to the final address)")
        case 400..<500:
            return .permanent(message())
        default:
            return .retryable(message(), after: retryAfter)
        }
    }

    /// Network failures are retried; a request libcurl refuses to send never will be sent.
    static func failure(_ error: TransportError, target: String) -> SinkError {
        let message = "request to \(target) failed: \(error.kind.rawValue): \(error.message)"
        return error.kind == .invalidRequest ? .permanent(message) : .retryable(message)
    }

    /// At most 200 characters of the answer's body, on one line.
    static func responseExcerpt(_ body: [UInt8]) -> String {
        let limit = 200
        let text = String(decoding: body.prefix(limit * 4), as: UTF8.self)
        var excerpt = String(
            String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
        excerpt = String(excerpt.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        if excerpt.count > limit || body.count > limit * 4 {
            excerpt = String(excerpt.prefix(limit)) + "…"
        }
        return excerpt
    }

    /// `scheme://host[:port]`: the part of a URL that messages and logs may show (the path and
    /// query of a chat webhook URL are its secret; user info is dropped too).
    static func displayTarget(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "the webhook" }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let rest = url[schemeEnd.upperBound...]
        var authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return "\(scheme)://\(authority)"
    }
}
