#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Musl)
    internal import Musl
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// The final response to an ``HTTPRequest`` (after any `1xx`). Error statuses are responses too.
public struct HTTPResponse: Sendable {
    /// The status code, e.g. `200`, `429`, `503`.
    public var status: Int
    /// Header fields of the final response in arrival order, names as the server spelled them.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first header field called `name`, compared case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// `Retry-After` as delta-seconds or as an HTTP-date (time from now, zero if past);
    /// `nil` when absent or unreadable.
    public var retryAfter: Duration? {
        header("Retry-After").flatMap { Self.parseRetryAfter($0, now: Int64(time(nil))) }
    }

    /// `request-id` (Microsoft Graph), else `x-request-id`.
    public var requestID: String? {
        header("request-id") ?? header("x-request-id")
    }

    /// The body decoded as UTF-8, invalid sequences replaced.
    public var bodyText: String {
        String(decoding: body, as: UTF8.self)
    }

    /// Parses a `Retry-After` value relative to `now` (seconds since the epoch).
    package static func parseRetryAfter(_ value: String, now: Int64) -> Duration? {
        let trimmed = value.trimmingWhitespace()
        if !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Absurdly large values saturate rather than fail: "wait a very long time" is still the meaning.
            return .seconds(Int64(trimmed) ?? Int64.max)
        }
        guard let date = HTTPDate.secondsSinceEpoch(trimmed) else { return nil }
        return .seconds(max(0, date - now))
    }
}

extension String {
    /// Drops leading and trailing ASCII spaces, tabs, CRs and LFs (compared as bytes: "\r\n" is
    /// one Character in Swift and would slip past a Character test).
    package func trimmingWhitespace() -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        let bytes = utf8
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
