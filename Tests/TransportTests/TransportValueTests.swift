import Testing

@testable import Transport

/// The transport's value types: header lookup, `Retry-After`, request and envelope checks, error
/// classes. Pure logic: no sockets, no libcurl.
@Suite struct TransportValueTests {
    @Test func headerLookupIsCaseInsensitiveFirstMatch() {
        let response = HTTPResponse(status: 200, headers: [("Content-Type", "a"), ("content-type", "b")])
        #expect(response.header("CONTENT-TYPE") == "a")
        #expect(response.header("missing") == nil)
    }

    @Test func requestIDPrefersGraphHeader() {
        let both = HTTPResponse(status: 200, headers: [("X-Request-Id", "x"), ("request-id", "graph")])
        let onlyX = HTTPResponse(status: 200, headers: [("x-request-id", "x")])
        #expect(both.requestID == "graph")
        #expect(onlyX.requestID == "x")
        #expect(HTTPResponse(status: 200).requestID == nil)
    }

    @Test(arguments: [
        ("120", Duration.seconds(120)),
        ("  7 ", .seconds(7)),
        ("0", .zero),
        // 1994-11-06 08:49:37 UTC is 784111777; "now" below is 784111677.
        ("Sun, 06 Nov 1994 08:49:37 GMT", .seconds(100)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", .seconds(100)),
        ("Sun Nov  6 08:49:37 1994", .seconds(100)),
        ("Sun, 06 Nov 1994 08:00:00 GMT", .zero),  // in the past
        ("99999999999999999999999", .seconds(Int64.max)),
    ])
    func retryAfterParses(value: String, expected: Duration) {
        #expect(HTTPResponse.parseRetryAfter(value, now: 784_111_677) == expected)
    }

    @Test(arguments: ["", "soon", "-5", "1.5"])
    func retryAfterRejectsGarbage(value: String) {
        #expect(HTTPResponse.parseRetryAfter(value, now: 784_111_677) == nil)
    }

    @Test func retryAfterReadsTheHeader() {
        #expect(HTTPResponse(status: 429, headers: [("retry-after", "3")]).retryAfter == .seconds(3))
        #expect(HTTPResponse(status: 429).retryAfter == nil)
    }

    @Test func bodyTextDecodesUTF8Leniently() {
        #expect(HTTPResponse(status: 200, body: Array("héllo".utf8)).bodyText == "héllo")
        #expect(HTTPResponse(status: 200, body: [0x61, 0xFF]).bodyText == "a\u{FFFD}")
    }

    @Test(arguments: [
        HTTPRequest(method: "GE T", url: "http://127.0.0.1/"),
        HTTPRequest(method: "", url: "http://127.0.0.1/"),
        HTTPRequest(url: "ftp://127.0.0.1/"),
        HTTPRequest(url: "file:///etc/passwd"),
        HTTPRequest(url: "http://127.0.0.1/\r\nX: y"),
        HTTPRequest(url: "http://127.0.0.1/", headers: [("X-Bad", "a\r\nInjected: 1")]),
        HTTPRequest(url: "http://127.0.0.1/", headers: [("Bad Name", "a")]),
    ])
    func invalidRequestsAreRejectedBeforeSending(request: HTTPRequest) {
        #expect(throws: TransportError.self) { try request.validate() }
    }

    @Test func validRequestPasses() throws {
        try HTTPRequest(method: "PATCH", url: "HTTPS://example.test/a?b=c", headers: [("X-Empty", "")]).validate()
    }

    @Test func transientKinds() {
        let transient: [TransportError.Kind] = [.couldNotResolve, .couldNotConnect, .timedOut, .sendFailed, .receiveFailed]
        let permanent: [TransportError.Kind] = [.tls, .tooLarge, .invalidRequest, .shutdown, .other]
        #expect(transient.allSatisfy { TransportError(kind: $0, message: "").isTransient })
        #expect(permanent.allSatisfy { !TransportError(kind: $0, message: "").isTransient })
        #expect("\(TransportError(kind: .timedOut, message: "m"))" == "TransportError.timedOut: m")
    }

    @Test(arguments: [
        ("Thu, 01 Jan 1970 00:00:00 GMT", Int64(0)),
        ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
        ("Sun, 06 Dec 2026 23:34:40 GMT", 1_796_600_080),
        ("Friday, 31-Dec-99 23:59:59 GMT", 946_684_799),
        ("Thursday, 01-Jan-37 00:00:00 GMT", 2_114_380_800),
        ("Sat Jan  1 00:00:00 2000", 946_684_800),
    ])
    func httpDatesReadAsUTC(text: String, seconds: Int64) {
        #expect(HTTPDate.secondsSinceEpoch(text) == seconds)
    }

    @Test(arguments: [
        "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:49 GMT", "Sun Nov  6 08:49:37", "tomorrow",
    ])
    func malformedHTTPDatesAreRefused(text: String) {
        #expect(HTTPDate.secondsSinceEpoch(text) == nil)
    }
}
