/// One HTTP(S) request for ``OutgoingTransport/execute(_:tls:)``.
///
/// Redirects are not followed, `Expect: 100-continue` is never sent, and a body sent without a
/// `Content-Type` header goes without one (libcurl's form-urlencoded default is suppressed).
public struct HTTPRequest: Sendable {
    /// The request method as sent: `"GET"`, `"POST"`, `"PATCH"`, `"DELETE"`, ... (an HTTP token).
    public var method: String
    /// An absolute `http://` or `https://` URL.
    public var url: String
    /// Header fields in order; names and values must not contain CR, LF or NUL.
    public var headers: [(name: String, value: String)]
    /// The request body. `POST`, `PUT` and `PATCH` without a body send `Content-Length: 0`.
    public var body: [UInt8]?
    /// Limit for the whole transfer (connect, send, wait, receive). Default 30 s; at least 1 ms.
    public var timeout: Duration
    /// Limit for the connect phase, TLS handshake included. Default 10 s.
    public var connectTimeout: Duration

    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}

extension HTTPRequest {
    /// Rejects what libcurl would send verbatim into the request head (header injection) or
    /// refuse later with a less helpful message.
    package func validate() throws(TransportError) {
        guard Self.isToken(method) else {
            throw .invalidRequest("method \"\(method)\" is not an HTTP token")
        }
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else {
            throw .invalidRequest("URL must start with http:// or https://")
        }
        guard !url.utf8.contains(where: Self.isForbiddenInLine) else {
            throw .invalidRequest("URL contains CR, LF or NUL")
        }
        for header in headers {
            guard Self.isToken(header.name) else {
                throw .invalidRequest("header name \"\(header.name)\" is not an HTTP token")
            }
            guard !header.value.utf8.contains(where: Self.isForbiddenInLine) else {
                throw .invalidRequest("value of header \(header.name) contains CR, LF or NUL")
            }
        }
    }

    private static func isForbiddenInLine(_ byte: UInt8) -> Bool {
        byte == 0x0D || byte == 0x0A || byte == 0x00
    }

    /// Whether `text` is an RFC 9110 `token` (one or more tchar): what a method or a header
    /// field name must be.
    public static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "A")...UInt8(ascii: "Z"):
                    return true
                default:
                    return "!#$%&'*+-.^_`|~".utf8.contains(byte)
                }
            }
    }
}
