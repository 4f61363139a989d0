import CurlKit
import TestSupport
import Foundation
import Testing

private func elapsed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, ContinuousClock.now - start)
}

/// Integration tests against `Tests/Support/http_receiver.py` on 127.0.0.1.
@Suite(.machine(.processes)) struct CurlClientTests {
    @Test func getSendsHeadersAndReturnsTheResponse() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let response = try await client.execute(
                HTTPRequest(url: receiver.url("/echo?q=1"), headers: [("X-Test", "one two"), ("X-Empty", "")]))
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json")
            let echo = try Echo(response)
            #expect(echo.method == "GET")
            #expect(echo.path == "/echo?q=1")
            #expect(echo.header("X-Test") == "one two")
            #expect(echo.header("X-Empty") == "")
            #expect(echo.header("User-Agent") == "graph-bridge")
            #expect(echo.header("Content-Length") == nil)
            #expect(echo.body.isEmpty)
            await client.shutdown()
        }
    }

    @Test func postSendsTheBodyByteExactWithoutExpect() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient(configuration: .init(userAgent: "curlkit-tests"))
            // Every byte value (NUL included) and a body large enough that curl would ask for 100-continue.
            var body = Array(0...255).map(UInt8.init)
            var generator = SystemRandomNumberGenerator()
            body += (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let response = try await client.execute(
                HTTPRequest(method: "POST", url: receiver.url("/echo"), headers: [("Content-Type", "application/octet-stream")], body: body))
            let echo = try Echo(response)
            #expect(echo.method == "POST")
            #expect(echo.body == body)
            #expect(echo.header("Content-Length") == String(body.count))
            #expect(echo.header("Content-Type") == "application/octet-stream")
            #expect(echo.header("Expect") == nil)
            #expect(echo.header("User-Agent") == "curlkit-tests")

            let plain = try Echo(
                try await client.execute(
                    HTTPRequest(method: "POST", url: receiver.url("/echo"), body: Array("{}".utf8))))
            #expect(plain.header("Content-Type") == nil, "no form-urlencoded default")
            #expect(plain.body == Array("{}".utf8))
            await client.shutdown()
        }
    }

    @Test func otherMethods() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let patch = try Echo(
                try await client.execute(
                    HTTPRequest(method: "PATCH", url: receiver.url("/echo"), body: Array("patch".utf8))))
            #expect(patch.method == "PATCH")
            #expect(patch.body == Array("patch".utf8))

            let put = try Echo(try await client.execute(HTTPRequest(method: "PUT", url: receiver.url("/echo"))))
            #expect(put.method == "PUT")
            #expect(put.header("Content-Length") == "0")

            let delete = try Echo(try await client.execute(HTTPRequest(method: "DELETE", url: receiver.url("/echo"))))
            #expect(delete.method == "DELETE")
            #expect(delete.body.isEmpty)

            let head = try await client.execute(HTTPRequest(method: "HEAD", url: receiver.url("/echo")))
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(try receiver.recordedRequests().map(\.method) == ["PATCH", "PUT", "DELETE", "HEAD"])
            await client.shutdown()
        }
    }

    @Test func errorStatusesAreResponses() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let unavailable = try await client.execute(
                HTTPRequest(url: receiver.url("/status/503?body=down&header=request-id:graph-1")))
            #expect(unavailable.status == 503)
            #expect(unavailable.bodyText == "down")
            #expect(unavailable.requestID == "graph-1")
            #expect(unavailable.retryAfter == nil)

            let statuses = try await [1, 2, 3].asyncMap { _ in
                try await client.execute(HTTPRequest(url: receiver.url("/fail-first/2/echo"))).status
            }
            #expect(statuses == [503, 503, 200])
        }
    }

    @Test func retryAfterInSecondsAndAsHTTPDate() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let seconds = try await client.execute(HTTPRequest(url: receiver.url("/status/429?retryAfter=2")))
            #expect(seconds.status == 429)
            #expect(seconds.retryAfter == .seconds(2))

            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            let date = formatter.string(from: Date().addingTimeInterval(120))
            let query = date.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let dated = try await client.execute(HTTPRequest(url: receiver.url("/status/503?retryAfter=\(query)")))
            #expect(dated.header("Retry-After") == date)
            let wait = try #require(dated.retryAfter)
            #expect(wait > .seconds(100) && wait <= .seconds(121))
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        try await withHTTPReceiver { receiver in
            let response = try await CurlClient().execute(
                HTTPRequest(url: receiver.url("/status/302?header=Location:/echo")))
            #expect(response.status == 302)
            #expect(response.header("Location") == "/echo")
            #expect(try receiver.recordedRequests().count == 1)
        }
    }

    @Test func slowResponseTimesOut() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let (error, took) = await elapsed {
                await #expect(throws: TransportError.self) {
                    try await client.execute(HTTPRequest(url: receiver.url("/slow/5000"), timeout: .milliseconds(300)))
                }
            }
            #expect(error?.kind == .timedOut)
            #expect(error?.isTransient == true)
            // The server would answer after 5 s with a 200: the timed-out error is the proof. The
            // bound only catches a hang (how soon it fails depends on the machine's load).
            #expect(took < .seconds(30))
        }
    }

    @Test func refusedConnection() async throws {
        try await withRefusingPort { port in
            let error = await #expect(throws: TransportError.self) {
                try await CurlClient().execute(HTTPRequest(url: "http://127.0.0.1:\(port)/"))
            }
            #expect(error?.kind == .couldNotConnect)
            #expect(error?.isTransient == true)
            #expect(error?.message.contains("curl code 7") == true)
        }
    }

    @Test(arguments: ["/reset", "/close", "/garbage"])
    func brokenAnswersFailAsReceiveErrors(path: String) async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let error = await #expect(throws: TransportError.self) {
                try await client.execute(HTTPRequest(url: receiver.url(path)))
            }
            #expect(error?.kind == .receiveFailed)
            // The client is still usable afterwards.
            let after = try await client.execute(HTTPRequest(url: receiver.url("/echo")))
            #expect(after.status == 200)
        }
    }

    @Test func invalidRequestsNeverReachTheServer() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            for request in [
                HTTPRequest(url: receiver.url("/echo"), headers: [("X-Bad", "a\r\nInjected: yes")]),
                HTTPRequest(url: "http://127.0.0.1:\(receiver.port)/a b"),
                HTTPRequest(url: "http://[::1/"),
            ] {
                let error = await #expect(throws: TransportError.self) { try await client.execute(request) }
                #expect(error?.kind == .invalidRequest, "\(request.url)")
            }
            let recorded = try receiver.recordedRequests()
            #expect(recorded.isEmpty)
        }
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let count = 300
            let (connections, took) = try await elapsed {
                var connections: Set<String> = []
                for index in 0..<count {
                    let response = try await client.execute(HTTPRequest(url: receiver.url("/status/200?i=\(index)")))
                    #expect(response.status == 200)
                    connections.insert(response.header("X-Receiver-Connection") ?? "?")
                }
                return connections
            }
            #expect(connections.count == 1, "one keep-alive connection for \(count) sequential requests: \(connections)")
            #expect(try receiver.recordedRequests().count == count)
            let perSecond = Double(count) / (Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
            print("sequential keep-alive: \(count) requests in \(took), \(Int(perSecond)) requests/s")
            await client.shutdown()
        }
    }

    @Test func concurrentRequestsAllCompleteWithTheirOwnResponse() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient(configuration: .init(maxHostConnections: 8))
            let count = 200
            let echoURL = receiver.url("/echo")
            let results = try await withThrowingTaskGroup(of: (Int, Echo).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let response = try await client.execute(
                            HTTPRequest(method: "POST", url: echoURL, body: Array("request \(index)".utf8)))
                        return (index, try Echo(response))
                    }
                }
                var results: [(Int, Echo)] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.count == count)
            #expect(results.allSatisfy { $0.1.body == Array("request \($0.0)".utf8) })
            let connections = Set(results.map(\.1.connection))
            #expect(connections.count <= 8, "maxHostConnections caps connections: \(connections.count)")
            await client.shutdown()
        }
    }

    @Test func cancellingAWaitingCallerAbandonsItsTransfer() async throws {
        try await withHTTPReceiver { receiver in
            // One connection per host: the follow-up below can only run once the cancelled transfer is gone.
            let client = CurlClient(configuration: .init(maxHostConnections: 1))
            let observer = CurlClient()
            let slowURL = receiver.url("/slow/20000")
            let slow = Task { try await client.execute(HTTPRequest(url: slowURL)) }
            // Await the server's view of the request (a long-poll on the receiver), not a sleep.
            let arrived = try await observer.execute(HTTPRequest(url: receiver.url("/_control/await?count=1&path=/slow")))
            #expect(arrived.status == 200)

            slow.cancel()
            let (cancelled, took) = await elapsed { await slow.result }
            #expect(throws: CancellationError.self) { try cancelled.get() }
            #expect(took < .seconds(5), "resumed on cancellation, not when the server answered")

            let (next, nextTook) = try await elapsed { try await client.execute(HTTPRequest(url: receiver.url("/echo"))) }
            #expect(next.status == 200)
            #expect(nextTook < .seconds(10), "the cancelled transfer released its connection")
            await observer.shutdown()
            await client.shutdown()
        }
    }

    @Test func alreadyCancelledTaskSendsNothing() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let echoURL = receiver.url("/echo")
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.execute(HTTPRequest(url: echoURL))
            }
            await #expect(throws: CancellationError.self) { try await task.value }
            // Later requests still work, and the cancelled one never reached the server.
            let later = try await client.execute(HTTPRequest(url: receiver.url("/status/204")))
            #expect(later.status == 204)
            let recorded = try receiver.recordedRequests()
            #expect(recorded.map(\.path) == ["/status/204"])
        }
    }

    @Test func responsesOverTheLimitFail() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient(configuration: .init(maxResponseBytes: 10_000))
            let exact = try await client.execute(HTTPRequest(url: receiver.url("/bytes/10000")))
            #expect(exact.body == (0..<10_000).map { UInt8($0 % 251) })

            for path in ["/bytes/10001", "/bytes/50000?chunked=1"] {
                let error = await #expect(throws: TransportError.self) {
                    try await client.execute(HTTPRequest(url: receiver.url(path)))
                }
                #expect(error?.kind == .tooLarge, "\(path)")
                #expect(error?.isTransient == false)
            }
            let chunked = try await client.execute(HTTPRequest(url: receiver.url("/bytes/9000?chunked=1")))
            #expect(chunked.body.count == 9000)
        }
    }

    @Test func shutdownFailsPendingWorkAndLaterRequests() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let slowURL = receiver.url("/slow/10000")
            let pending = (0..<3).map { _ in
                Task { try await client.execute(HTTPRequest(url: slowURL)) }
            }
            let arrived = try await client.execute(HTTPRequest(url: receiver.url("/_control/await?count=3&path=/slow")))
            #expect(arrived.status == 200)

            let (_, took) = await elapsed { await client.shutdown() }
            #expect(took < .seconds(5))
            for task in pending {
                let error = await #expect(throws: TransportError.self) { try await task.value }
                #expect(error?.kind == .shutdown)
            }
            let later = await #expect(throws: TransportError.self) {
                try await client.execute(HTTPRequest(url: receiver.url("/echo")))
            }
            #expect(later?.kind == .shutdown)
            await client.shutdown()  // twice is fine
        }
    }

    @Test func shutdownOfAnUnusedClientReturns() async throws {
        let client = CurlClient()
        await client.shutdown()
        let error = await #expect(throws: TransportError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:1/"))
        }
        #expect(error?.kind == .shutdown)
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
