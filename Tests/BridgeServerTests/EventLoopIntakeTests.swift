import BridgeCore
@testable import BridgeServer
@testable import BridgeStore
import Dispatch
import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

/// The notification POSTs answered on the event loop (`NotificationChannelHandler`) beside
/// Hummingbird's request loop on one connection: order, headers, `Connection: close`, and a body
/// over the limit, over real sockets.
@Suite("notifications on the event loop")
struct EventLoopIntakeTests {
    static func post(_ path: String, _ body: [UInt8], extraHeaders: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(extraHeaders)Content-Length: \(body.count)\r\n\r\n"
            + String(decoding: body, as: UTF8.self)
    }

    static let healthz = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    /// Reads `count` whole responses (heads and `Content-Length` bodies), in the order they came.
    static func responses(_ count: Int, from connection: RawConnection, timeout: Duration = .seconds(20)) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        var responses: [String] = []
        while responses.count < count, ContinuousClock.now < deadline {
            guard case .bytes(let more) = await connection.receive(timeout: deadline - ContinuousClock.now) else { break }
            bytes += more
            while let (response, length) = Self.firstResponse(in: bytes) {
                responses.append(response)
                bytes.removeFirst(length)
            }
        }
        return responses
    }

    private static func firstResponse(in bytes: [UInt8]) -> (String, Int)? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<end.lowerBound]
        let length =
            head.lowercased().split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        let headLength = text.utf8.distance(from: text.startIndex, to: end.upperBound)
        guard bytes.count >= headLength + length else { return nil }
        return (String(decoding: bytes[..<(headLength + length)], as: UTF8.self), headLength + length)
    }

    static func status(_ response: String) -> Int? {
        response.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
    }

    static func header(_ name: String, in response: String) -> String? {
        let head = response.components(separatedBy: "\r\n\r\n")[0]
        for line in head.split(separator: "\r\n").dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name.lowercased() { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    @Test("pipelined requests are answered in their order, whichever of the two paths answers each")
    func pipelinedInOrder() async throws {
        let health = GatedHealth()
        try await ListenerTests.withListener(health: health) { live in
            let connection = try await RawConnection.open(port: live.port)
            // Hummingbird's loop answers the first, held until the test lets it go; the event loop the
            // second. The second must not overtake the first, though its journal write is quick.
            try await connection.send(
                Self.healthz + Self.post("/notifications", ListenerTests.body(ListenerTests.item(etag: "1")))
                    + Self.post("/notifications?validationToken=abc%20d", []) + Self.post("/lifecycle", ListenerTests.body(ListenerTests.item(etag: "2"))))
            await health.entered.value()
            // The one wait for something not to happen: while the health check is held, no answer
            // leaves (without the pipelining assistance, the 202 would, in a millisecond or two).
            #expect(await connection.receive(timeout: .milliseconds(500)) == .nothing)
            health.gate.set(())
            let responses = await Self.responses(4, from: connection)
            #expect(responses.map(Self.status) == [200, 202, 200, 202])
            #expect(responses.first?.hasSuffix("ok\n") == true)
            #expect(responses.dropFirst(2).first?.hasSuffix("\r\n\r\nabc d") == true)
            #expect(try await live.store.eventCount() == 2)
        }
    }

    @Test("answers carry the same headers as Hummingbird's: Date, Server, Content-Length, and text/plain with nosniff for a refusal")
    func headers() async throws {
        try await ListenerTests.withListener { live in
            let connection = try await RawConnection.open(port: live.port)
            try await connection.send(Self.post("/notifications", ListenerTests.body(ListenerTests.item())) + Self.post("/notifications", Array("{oops".utf8)) + Self.healthz)
            let responses = await Self.responses(3, from: connection)
            try #require(responses.count == 3)
            let (accepted, refused, health) = (responses[0], responses[1], responses[2])
            #expect(Self.status(accepted) == 202)
            #expect(Self.header("content-length", in: accepted) == "0")
            #expect(Self.header("server", in: accepted) == "graph-bridge")
            #expect(Self.header("server", in: health) == "graph-bridge")
            let date = try #require(Self.header("date", in: accepted))
            let parser = DateFormatter()
            parser.locale = Locale(identifier: "en_US_POSIX")
            parser.timeZone = TimeZone(identifier: "GMT")
            parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            let sent = try #require(parser.date(from: date), "not an IMF-fixdate: \(date)")
            #expect(abs(sent.timeIntervalSinceNow) < 60)
            #expect(Self.status(refused) == 400)
            #expect(Self.header("content-type", in: refused) == "text/plain; charset=utf-8")
            #expect(Self.header("x-content-type-options", in: refused) == "nosniff")
            #expect(Self.header("content-length", in: refused).flatMap { Int($0) } == refused.components(separatedBy: "\r\n\r\n")[1].utf8.count)
        }
    }

    @Test("Connection: close is answered, then the connection closed")
    func connectionClose() async throws {
        try await ListenerTests.withListener { live in
            let connection = try await RawConnection.open(port: live.port)
            try await connection.send(Self.post("/notifications", ListenerTests.body(ListenerTests.item()), extraHeaders: "Connection: close\r\n"))
            let responses = await Self.responses(1, from: connection)
            #expect(responses.map(Self.status) == [202])
            let (closed, _) = await connection.waitForClose(timeout: .seconds(10))
            #expect(closed)
            #expect(try await live.store.eventCount() == 1)
        }
    }

    @Test("a body over maxBodyBytes is answered 413 at once; the rest of it is read and dropped, and the connection serves the next request")
    func oversizeKeepsTheConnection() async throws {
        try await ListenerTests.withListener(maxBodyBytes: 4096) { live in
            let connection = try await RawConnection.open(port: live.port)
            let oversize = ListenerTests.body(ListenerTests.item(etag: String(repeating: "x", count: 20_000)))
            let request = Self.post("/notifications", oversize)
            // The head and the first 8 KB: the answer comes before the rest is sent.
            try await connection.send(String(request.prefix(8192)))
            #expect(await Self.responses(1, from: connection).map(Self.status) == [413])
            try await connection.send(String(request.dropFirst(8192)) + Self.post("/notifications", ListenerTests.body(ListenerTests.item(etag: "small"))))
            #expect(await Self.responses(1, from: connection).map(Self.status) == [202])
            #expect(try await live.store.eventCount() == 1)
        }
    }

    @Test("a graceful shutdown while a notification waits for its commit: the 202 is written, then the connection closes")
    func shutdownWaitsForTheAnswer() async throws {
        try await ListenerTests.withListener { live in
            let connection = try await RawConnection.open(port: live.port)
            // An idle keep-alive connection beside it: the shutdown closes it at once.
            let idle = try await RawConnection.open(port: live.port)
            try await idle.send(Self.healthz)
            #expect(await Self.responses(1, from: idle).map(Self.status) == [200])
            // The writer's queue is held, so the notification's commit waits until the test lets it go.
            let entered = DispatchSemaphore(value: 0)
            let opened = DispatchSemaphore(value: 0)
            let hold = Task { try await live.store.pool.writeWithoutTransaction { _ in entered.signal(); opened.wait() } }
            await withCheckedContinuation { continuation in DispatchQueue.global().async { entered.wait(); continuation.resume() } }
            try await connection.send(Self.post("/notifications", ListenerTests.body(ListenerTests.item())))
            #expect(try await eventually { live.store.committer.pendingCount == 1 }, "the request reached the committer")

            await live.stopListening()
            // The shutdown has reached the connections (the idle one is closed); only then may the
            // commit finish, so the answer must outlast the shutdown's close.
            #expect(await idle.waitForClose(timeout: .seconds(10)).closed)
            opened.signal()
            try await hold.value
            let responses = await Self.responses(1, from: connection)
            #expect(responses.map(Self.status) == [202], "the acknowledgement was written before the connection closed")
            let (closed, _) = await connection.waitForClose(timeout: .seconds(10))
            #expect(closed)
            #expect(try await live.store.eventCount() == 1)
        }
    }

    @Test("the Date header is IMF-fixdate, the same as Foundation's formatting, across centuries")
    func dateFormat() throws {
        #expect(ResponseDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        // 1900-01-01 to 2199-12-31 in steps of 54 days and a bit (every weekday and time of day
        // comes up), then the days around two leap days and the epoch.
        for second in stride(from: Int64(-2_208_988_800), to: 7_258_118_399, by: 4_733_227) {
            #expect(ResponseDate.format(second) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(second))), "\(second)")
        }
        for second: Int64 in [951_782_400, 951_868_800, 4_107_456_000, 4_107_542_400, 0, -1] {
            #expect(ResponseDate.format(second) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(second))), "\(second)")
        }
    }
}

/// A public `/healthz` that answers only once the test lets it.
final class GatedHealth: HealthCheck {
    let entered = OneShot<Void>()
    let gate = OneShot<Void>()
    func problems() async -> [String: String] { [:] }
    func acceptsNotifications() async -> Bool {
        entered.set(())
        await gate.value()
        return true
    }
}
