import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import TestSupport
import Testing

/// `server.idleTimeout`, `server.requestTimeout` and `server.maxConnections` against real sockets
/// that send nothing, stop half-way, or trickle; Graph's notifications are answered meanwhile.
/// The timeouts are short through the configuration, never by waiting long.
@Suite("slow clients", .machine(.exclusive))
struct SlowClientTests {
    static let head = "POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"

    @Test("a silent connection is closed after idleTimeout; a notification is answered 202 meanwhile")
    func silentConnection() async throws {
        let limits = ConnectionLimits(idleTimeout: .milliseconds(600), requestTimeout: .seconds(30), maxConnections: 1024)
        try await ListenerTests.withListener(limits: limits) { live in
            let opened = ContinuousClock.now
            let silent = try await (0..<20).asyncMap { _ in try await RawConnection.open(port: live.port) }
            #expect(try await live.post("/notifications", body: ListenerTests.body(ListenerTests.item())).status == 202)
            for connection in silent {
                let (closed, _) = await connection.waitForClose(timeout: .seconds(10))
                #expect(closed)
            }
            let elapsed = ContinuousClock.now - opened
            #expect(elapsed >= .milliseconds(600), "closed after the idle timeout, not before: \(elapsed)")
            #expect(try await live.store.eventCount() == 1)
        }
    }

    @Test("half-sent requests are closed after requestTimeout even while they trickle; complete ones are answered")
    func halfSentRequests() async throws {
        // The idle timeout is long, so only the request deadline can close these.
        // 2 s: long enough that a busy machine still fits a few trickled bytes in before it.
        let limits = ConnectionLimits(idleTimeout: .seconds(20), requestTimeout: .seconds(2), maxConnections: 1024)
        try await ListenerTests.withListener(limits: limits) { live in
            let started = ContinuousClock.now
            let partialHead = try await RawConnection.open(port: live.port)
            try await partialHead.send("POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            let partialBody = try await RawConnection.open(port: live.port)
            try await partialBody.send(Self.head + #"{"value":["#)
            let trickle = try await RawConnection.open(port: live.port)
            try await trickle.send(Self.head)

            // A byte every 100 ms keeps the connection from being idle; the request deadline still ends it.
            let trickled = Task {
                var sent = 0
                while (try? await trickle.send(" ")) != nil, sent < 200 {
                    sent += 1
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return sent
            }
            #expect(try await live.post("/notifications", body: ListenerTests.body(ListenerTests.item())).status == 202)
            for connection in [partialHead, partialBody, trickle] {
                let (closed, _) = await connection.waitForClose(timeout: .seconds(12))
                #expect(closed)
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .seconds(2) && elapsed < .seconds(12), "\(elapsed)")
            let bytes = await trickled.value
            #expect(bytes >= 3 && bytes < 200, "the trickling client sent \(bytes) bytes before it was cut off")
            #expect(try await live.store.eventCount() == 1, "nothing of the half-sent requests was journaled")
        }
    }

    @Test("the request deadline runs from each request's first byte, not from the connection's start")
    func keepAliveBetweenRequests() async throws {
        let limits = ConnectionLimits(idleTimeout: .seconds(20), requestTimeout: .seconds(1), maxConnections: 1024)
        try await ListenerTests.withListener(limits: limits) { live in
            let connection = try await RawConnection.open(port: live.port)
            for etag in ["1", "2"] {
                let body = String(decoding: ListenerTests.body(ListenerTests.item(etag: etag)), as: UTF8.self)
                // Sent in two parts with a pause shorter than the deadline.
                try await connection.send("POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\n")
                try await Task.sleep(for: .milliseconds(100))
                try await connection.send("\r\n" + body)
                let response = try #require(await connection.receiveResponse(timeout: .seconds(10)))
                #expect(response.hasPrefix("HTTP/1.1 202"), "\(response)")
                // Longer than the request deadline, idle between requests: the connection stays open.
                try await Task.sleep(for: .milliseconds(1500))
            }
            #expect(try await live.store.eventCount() == 2)
        }
    }

    @Test("with maxConnections 2, a third connection is served only once one of the first two closes")
    func connectionCap() async throws {
        let limits = ConnectionLimits(idleTimeout: .seconds(30), requestTimeout: .seconds(30), maxConnections: 2)
        try await ListenerTests.withListener(limits: limits) { live in
            let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            let first = try await RawConnection.open(port: live.port)
            let second = try await RawConnection.open(port: live.port)
            for connection in [first, second] {
                try await connection.send(request)
                #expect(await connection.receiveResponse(timeout: .seconds(10))?.hasPrefix("HTTP/1.1 200") == true)
            }
            let third = try await RawConnection.open(port: live.port)  // in the listen backlog
            try await third.send(request)
            // The listener keeps serving the connections it has while the third one waits.
            try await first.send(request)
            #expect(await first.receiveResponse(timeout: .seconds(10))?.hasPrefix("HTTP/1.1 200") == true)
            #expect(await third.receive(timeout: .seconds(1)) == .nothing, "the third connection must wait")

            first.close()
            let answer = await third.receiveResponse(timeout: .seconds(10))
            #expect(answer?.hasPrefix("HTTP/1.1 200") == true, "served once a slot was free: \(answer ?? "nothing")")
        }
    }
}

extension Sequence {
    /// `map` with an async transform, one element after another.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
