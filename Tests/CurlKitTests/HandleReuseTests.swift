@testable import CurlKit
import Foundation
import TestSupport
import Testing

/// The transfer thread reuses the easy handles of finished transfers (`curl_easy_reset`): one
/// after another, the requests of one client go through one handle, and none of them carries
/// anything of the one before (method, body, headers, HEAD's no-body, a response limit's failure).
@Suite(.machine(.processes)) struct HandleReuseTests {
    @Test func oneHandleServesRequestsInTurnAndForgetsEachOne() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient(configuration: .init(maxResponseBytes: 4096))
            let post = try Echo(
                try await client.execute(
                    HTTPRequest(
                        method: "POST", url: receiver.url("/echo"), headers: [("Content-Type", "text/plain"), ("X-One", "1")],
                        body: Array("first".utf8))))
            #expect(post.method == "POST")
            #expect(post.body == Array("first".utf8))
            #expect(post.header("X-One") == "1")

            // A GET after it: no body, no Content-Length, none of the POST's headers.
            let get = try Echo(try await client.execute(HTTPRequest(url: receiver.url("/echo"))))
            #expect(get.method == "GET")
            #expect(get.body.isEmpty)
            #expect(get.header("Content-Length") == nil)
            #expect(get.header("Content-Type") == nil)
            #expect(get.header("X-One") == nil)

            // HEAD, then a GET that must have its body again.
            let head = try await client.execute(HTTPRequest(method: "HEAD", url: receiver.url("/echo")))
            #expect(head.status == 200 && head.body.isEmpty)
            let afterHead = try await client.execute(HTTPRequest(url: receiver.url("/echo")))
            #expect(try Echo(afterHead).method == "GET")

            // A custom method, then a POST: the method does not stick.
            #expect(try Echo(try await client.execute(HTTPRequest(method: "DELETE", url: receiver.url("/echo")))).method == "DELETE")
            #expect(try Echo(try await client.execute(HTTPRequest(method: "POST", url: receiver.url("/echo"), body: []))).method == "POST")

            // A response over the limit fails; the next one on the same handle is whole.
            await #expect(throws: TransportError.self) {
                try await client.execute(HTTPRequest(url: receiver.url("/bytes/10000")))
            }
            let whole = try await client.execute(HTTPRequest(url: receiver.url("/bytes/3000")))
            #expect(whole.status == 200 && whole.body.count == 3000)

            #expect(client.easyHandlesMade == 1, "every request after the first reused the first one's handle")
            #expect(try receiver.recordedRequests().map(\.method) == ["POST", "GET", "HEAD", "GET", "DELETE", "POST", "GET", "GET"])
            await client.shutdown()
        }
    }

    @Test func requestsInFlightAtOnceEachHaveAHandle() async throws {
        try await withHTTPReceiver { receiver in
            let client = CurlClient()
            let slow = receiver.url("/echo?delay_ms=500")
            for _ in 0..<3 {
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<4 {
                        group.addTask { try await client.execute(HTTPRequest(url: slow)).status }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses == [200, 200, 200, 200])
            }
            // Four at once need four handles; the next rounds reuse them.
            #expect(client.easyHandlesMade == 4)
            await client.shutdown()
        }
    }
}
