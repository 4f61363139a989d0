import BridgeCore
import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import TestSupport
import Testing

/// The admin listener's `GET /events` (Server-Sent Events) on a live listener: the snapshot, live
/// messages with ids, keep-alive comments, `Last-Event-ID` resume from the feed and from the
/// store, and how a browser signs in when `server.admin.token` is set.
@Suite("event stream")
struct EventStreamTests {
    static let admin = BridgeServer.Configuration.Admin(host: "127.0.0.1", port: 0)

    static func event(_ id: String, at date: Date = Date()) -> BridgeEvent {
        BridgeEvent(
            id: id, receivedAt: date, subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: nil), changeType: "created",
            resource: "Users/1/Messages/\(id)", data: .object(["subject": "private mail subject"]))
    }

    /// Opens `GET path` on the admin listener with `headers`, and reads what arrives.
    static func open(_ live: ListenerTests.Live, _ path: String = "/events", headers: [String] = []) async throws -> Stream {
        let port = try #require(live.adminURL.flatMap { Int($0.split(separator: ":").last ?? "") })
        let connection = try await RawConnection.open(port: port)
        try await connection.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        return Stream(connection: connection)
    }

    /// What one connection received so far.
    final class Stream: @unchecked Sendable {
        // Used by one test task at a time.
        let connection: RawConnection
        var text = ""

        init(connection: RawConnection) { self.connection = connection }

        /// Reads until `text` contains `wanted` (true) or the peer closes or 15 s pass (false).
        func read(until wanted: String, timeout: Duration = .seconds(15)) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while !text.contains(wanted) {
                guard ContinuousClock.now < deadline, case .bytes(let bytes) = await connection.receive(timeout: deadline - ContinuousClock.now)
                else {
                    return false
                }
                text += String(decoding: bytes, as: UTF8.self)
            }
            return true
        }

        /// The `id:` lines, in order.
        var ids: [Int64] {
            text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("id: ") }.compactMap {
                Int64($0.dropFirst(4).trimmingCharacters(in: .whitespaces))
            }
        }
    }

    @Test("/events: a snapshot first, then each activity as an event with an id, and keep-alive comments while idle")
    func liveStream() async throws {
        let feed = ActivityFeed()
        feed.record(.routed(Self.event("before"), sinks: ["audit"]))
        try await ListenerTests.withListener(
            admin: Self.admin, status: FixedStatus(), events: { _ in .init(feed: feed, keepAlive: .milliseconds(100)) }
        ) { live in
            let stream = try await Self.open(live)
            #expect(await stream.read(until: "event: snapshot\n"), "\(stream.text)")
            #expect(
                stream.text.contains("Content-Type: text/event-stream") || stream.text.contains("content-type: text/event-stream"), "\(stream.text)")
            #expect(stream.text.contains("retry: 2000\n"))
            // The snapshot holds the status and the events the feed kept, without their data.
            #expect(await stream.read(until: #""marker":true"#), "\(stream.text)")
            #expect(stream.text.contains(#""id":"before""#) && !stream.text.contains("private mail subject"), "\(stream.text)")

            feed.record(.routed(Self.event("e1"), sinks: ["audit", "chat"]))
            #expect(await stream.read(until: "event: routed\ndata: {"), "\(stream.text)")
            #expect(await stream.read(until: #""sinks":["audit","chat"]"#), "\(stream.text)")
            feed.record(.delivered(eventID: "e1", sink: "chat", outcome: .deadLetter, attempt: 1, error: "HTTP 400"))
            #expect(await stream.read(until: #""outcome":"dead_letter""#), "\(stream.text)")
            feed.record(.subscription(name: "inbox", change: .renewed, graphID: "sub-1", expires: Date(timeIntervalSince1970: 1_900_000_000)))
            #expect(await stream.read(until: #""change":"renewed""#), "\(stream.text)")
            #expect(stream.ids.count == 3 && stream.ids == stream.ids.sorted(), "\(stream.ids)")
            // Activity brings a status message (queues and dead letters come from the store).
            #expect(await stream.read(until: "event: status\n"), "\(stream.text)")
            #expect(await stream.read(until: ": keep-alive\n\n"), "\(stream.text)")
            #expect(!stream.text.contains("private mail subject"))
            stream.connection.close()
            // The stream ends with its client: the feed forgets the subscriber.
            #expect(try await eventually { feed.subscriberCount == 0 })
        }
    }

    @Test("an open stream outlives server.idleTimeout and server.requestTimeout: it is an answer in progress, not an idle client")
    func outlivesTimeouts() async throws {
        let feed = ActivityFeed()
        // Timeouts long enough that a busy machine still gets the request in (1 s was not, once,
        // in a parallel run at a load of 5: the listener closed the connection before it had read
        // the request); the stream then outlives them more than twice over.
        let limits = ConnectionLimits(idleTimeout: .seconds(3), requestTimeout: .seconds(3), maxConnections: 16)
        try await ListenerTests.withListener(limits: limits, admin: Self.admin, events: { _ in .init(feed: feed, keepAlive: .milliseconds(3_500)) }) {
            live in
            let stream = try await Self.open(live)
            #expect(await stream.read(until: "event: snapshot\n"), "\(stream.text)")
            // Two keep-alives: 7 s, more than twice either timeout.
            for _ in 1...2 {
                #expect(await stream.read(until: ": keep-alive\n\n"), "\(stream.text)")
                stream.text = stream.text.replacingOccurrences(of: ": keep-alive", with: ": seen")
            }
            feed.record(.routed(Self.event("late"), sinks: []))
            #expect(await stream.read(until: #""id":"late""#), "\(stream.text)")
            stream.connection.close()
        }
    }

    @Test("Last-Event-ID: what the feed still holds is sent again exactly; an id from before the feed began replays the store's events")
    func resume() async throws {
        let feed = ActivityFeed()
        try await ListenerTests.withListener(admin: Self.admin, events: { store in .init(feed: feed, history: store) }) { live in
            let first = try await Self.open(live)
            #expect(await first.read(until: "event: snapshot\n"))
            for name in ["a", "b", "c"] {
                feed.record(.routed(Self.event(name), sinks: ["audit"]))
            }
            #expect(await first.read(until: #""id":"c""#), "\(first.text)")
            let ids = first.ids
            #expect(ids.count == 3)
            first.connection.close()

            // Resume after "a": b and c again, in order, with the same ids; not a.
            let resumed = try await Self.open(live, headers: ["Last-Event-ID: \(ids[0])"])
            #expect(await resumed.read(until: #""id":"c""#), "\(resumed.text)")
            #expect(resumed.ids == Array(ids.dropFirst()))
            // What follows the snapshot (which lists the feed's recent events itself).
            let snapshot = try #require(resumed.text.range(of: "event: snapshot\n"))
            let snapshotEnd = try #require(resumed.text.range(of: "\n\n", range: snapshot.upperBound..<resumed.text.endIndex))
            let afterSnapshot = resumed.text[snapshotEnd.upperBound...]
            #expect(!afterSnapshot.contains(#""id":"a""#) && afterSnapshot.contains(#""id":"b""#), "\(resumed.text)")
            resumed.connection.close()
        }
        // A feed that began after the event arrived (the bridge restarted since): the store still has it.
        let later = ActivityFeed(now: { Date().addingTimeInterval(60) })
        try await ListenerTests.withListener(admin: Self.admin, events: { store in .init(feed: later, history: store) }) { live in
            #expect(try await live.post("/notifications", body: ListenerTests.body(ListenerTests.item(etag: "stored"))).status == 202)
            let stored = try #require(try await live.store.recentEvents(limit: 1).first)
            let old = try await Self.open(live, headers: ["Last-Event-ID: \(stored.receivedAtMilliseconds * 1000 - 1)"])
            #expect(await old.read(until: #""replayed":true"#), "\(old.text)")
            #expect(old.text.contains(#""id":"\#(stored.id)""#))
            old.connection.close()
            // Nothing after the last one it saw: nothing replayed.
            let current = try await Self.open(live, headers: ["Last-Event-ID: \(stored.receivedAtMilliseconds * 1000 + 1000)"])
            #expect(await current.read(until: "event: snapshot\n"))
            #expect(!current.text.contains("replayed"))
            current.connection.close()
        }
    }

    @Test("with server.admin.token: /events needs it; a browser signs in once with a form and gets an HttpOnly, SameSite=Strict session cookie")
    func browserSignIn() async throws {
        let secret = "adm-token-5f4e3d2c1b"
        let feed = ActivityFeed()
        try await ListenerTests.withListener(
            admin: .init(host: "127.0.0.1", port: 0, token: secret), status: FixedStatus(), events: { _ in .init(feed: feed) }
        ) { live in
            let base = try #require(live.adminURL)
            #expect(try await live.admin("/events").status == 401)
            let bearer = try await Self.open(live, headers: ["Authorization: Bearer \(secret)"])
            #expect(await bearer.read(until: "event: snapshot\n"), "\(bearer.text)")
            bearer.connection.close()

            // The page without a session is the sign-in form (still a 401 for anything but a browser).
            let page = try await live.admin("/")
            #expect(page.status == 401 && page.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(page.bodyText.contains(#"<form method="post" action="login">"#) && !page.bodyText.contains(secret))

            func login(_ token: String) async throws -> CurlKit.HTTPResponse {
                try await live.client.execute(
                    HTTPRequest(
                        method: "POST", url: base + "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                        body: Array("token=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)".utf8)))
            }
            let wrong = try await login("guess")
            #expect(wrong.status == 401 && wrong.bodyText.contains("not the admin token") && wrong.header("Set-Cookie") == nil)
            let right = try await login(secret)
            #expect(right.status == 303 && right.header("Location") == "./")
            let cookie = try #require(right.header("Set-Cookie"))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "\(cookie)")
            #expect(!cookie.contains(secret), "the cookie is a session, not the token")
            let session = try #require(cookie.split(separator: ";").first.map(String.init))

            // The cookie lets the page, its stream and the rest in; a made-up one does not.
            let withCookie = try await live.client.execute(HTTPRequest(url: base + "/", headers: [("Cookie", session)]))
            #expect(withCookie.status == 200 && withCookie.bodyText.contains("new EventSource('events')"))
            #expect(try await live.client.execute(HTTPRequest(url: base + "/status.json", headers: [("Cookie", session)])).status == 200)
            let stream = try await Self.open(live, headers: ["Cookie: other=1; \(session)"])
            #expect(await stream.read(until: "event: snapshot\n"), "\(stream.text)")
            stream.connection.close()
            let forged = String(session.dropLast()) + (session.hasSuffix("0") ? "1" : "0")
            #expect(try await live.client.execute(HTTPRequest(url: base + "/events", headers: [("Cookie", forged)])).status == 401)
        }
    }

    @Test("the page inserts what it shows as text and loads nothing from elsewhere")
    func pageIsSelfContained() async throws {
        try await ListenerTests.withListener(admin: Self.admin, events: { _ in .init(feed: ActivityFeed()) }) { live in
            let page = try await live.admin("/").bodyText
            #expect(page.contains("new EventSource('events')"))
            #expect(!page.contains("innerHTML") && !page.contains("insertAdjacentHTML") && !page.contains("document.write"))
            #expect(!page.contains("src=") && !page.contains("<link") && !page.contains("@import") && !page.contains("url("), "no external asset")
            #expect(!page.contains("setInterval(refresh") && !page.contains("fetch("), "no polling")
        }
    }
}

/// Polls a condition with no event to await until it holds or 15 s pass.
func eventually(timeout: Duration = .seconds(15), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}
