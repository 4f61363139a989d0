import Testing

@testable import CurlKit

/// Pure logic: no sockets, no threads.
@Suite struct ResponseParsingTests {
    @Test func headCollectsOnlyTheFinalResponse() {
        var head = ResponseHead()
        for line in [
            "HTTP/1.1 100 Continue\r\n", "X-Interim: 1\r\n", "\r\n",
            "HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "X-Folded: one\r\n", "\ttwo\r\n",
            "X-Empty:\r\n", "X-Spaced:   padded value  \r\n", "\r\n",
        ] {
            head.consume(line: line)
        }
        #expect(head.headers.map(\.name) == ["Content-Type", "X-Folded", "X-Empty", "X-Spaced"])
        #expect(head.headers.map(\.value) == ["text/plain", "one two", "", "padded value"])
    }

    @Test func timeoutsBecomeWholePositiveMilliseconds() {
        #expect(Duration.seconds(30).curlMilliseconds == 30_000)
        #expect(Duration.milliseconds(1500).curlMilliseconds == 1500)
        #expect(Duration.microseconds(10).curlMilliseconds == 1)
        #expect(Duration.zero.curlMilliseconds == 1)
        #expect(Duration.seconds(-3).curlMilliseconds == 1)
    }
}
