public import BridgeCore
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle

extension BridgeServer {
    /// What the admin listener's `GET /events` streams (Server-Sent Events).
    public struct EventStream: Sendable {
        /// Where the dispatcher, the sink workers and the subscription manager report.
        public var feed: ActivityFeed
        /// Where a `Last-Event-ID` older than the feed holds is looked up (the events the store still has).
        public var history: (any StoreInspection)?
        /// How often a comment line keeps an idle stream (and the proxies in between) open.
        public var keepAlive: Duration
        /// At most one `status` message (queues, dead letters, subscriptions from the store) per this interval, after activity.
        public var statusInterval: Duration

        public init(
            feed: ActivityFeed, history: (any StoreInspection)? = nil, keepAlive: Duration = .seconds(15),
            statusInterval: Duration = .milliseconds(500)
        ) {
            self.feed = feed
            self.history = history
            self.keepAlive = keepAlive
            self.statusInterval = statusInterval
        }
    }

    /// How many events a resume from the store replays at most.
    static let storeReplayLimit = 1000

    /// `GET /events`: `retry:`, one `snapshot` (no id: the status, the last 100 events with their
    /// outcomes, per-sink activity, the chart), what was missed since `Last-Event-ID`, then every
    /// `routed`, `delivery` and `subscription` message as it happens (each with an `id:`), a
    /// `status` message after activity (at most one per `statusInterval`), and a `: keep-alive`
    /// comment every `keepAlive`. Ends when the client goes or the bridge stops.
    func handleEvents(_ request: Request) -> Response {
        guard let stream = events else { return Self.text(.notFound, "the event stream is not enabled\n") }
        let lastEventID = request.headers[HTTPFields.Element.Name("Last-Event-ID")!].flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
        let subscription = stream.feed.subscribe(after: lastEventID)
        let status = self.status
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store", .xContentTypeOptions: "nosniff",
                HTTPFields.Element.Name("X-Accel-Buffering")!: "no",
            ],
            body: ResponseBody { writer in
                let (outbox, mail) = AsyncStream<ByteBuffer>.makeStream()
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        let refresh = Doorbell()
                        group.addTask {
                            var opening = "retry: 2000\n\n"
                            opening += Self.sse(name: "snapshot", id: nil, data: await Self.snapshot(status: status, feed: subscription.snapshot))
                            if let missed = subscription.missed {
                                for entry in missed { opening += Self.sse(entry) }
                            } else if let history = stream.history, let lastEventID {
                                opening += await Self.replay(from: history, after: lastEventID)
                            }
                            mail.yield(ByteBuffer(string: opening))
                            for await entry in subscription.live {
                                mail.yield(ByteBuffer(string: Self.sse(entry)))
                                refresh.ring()
                            }
                            mail.finish()  // fell too far behind: the client reconnects with its Last-Event-ID
                        }
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: stream.keepAlive)
                                mail.yield(ByteBuffer(string: ": keep-alive\n\n"))
                            }
                        }
                        if let status {
                            group.addTask {
                                while !Task.isCancelled {
                                    await refresh.wait(timeout: nil)
                                    if Task.isCancelled { break }
                                    mail.yield(
                                        ByteBuffer(string: Self.sse(name: "status", id: nil, data: Self.withoutRecentEvents(await status.status()))))
                                    try await Task.sleep(for: stream.statusInterval)
                                }
                            }
                        }
                        defer { group.cancelAll() }
                        // A write to a client that has gone throws, which ends the stream.
                        for await chunk in outbox {
                            try await writer.write(chunk)
                        }
                    }
                } onGracefulShutdown: {
                    mail.finish()
                }
                try await writer.finish(nil)
            }
        )
    }

    /// The first message: the status (as `/status.json` has it, less its recent events) and the
    /// feed's snapshot, taken as the subscription began (so no entry is both in it and sent live).
    static func snapshot(status: (any StatusProvider)?, feed: JSONValue) async -> JSONValue {
        var object = JSONObject()
        object["now"] = .string(Timestamp.format(Date()))
        if let status, case .object(let members) = withoutRecentEvents(await status.status()) {
            for member in members.members { object[member.key] = member.value }
        }
        if case .object(let members) = feed {
            for member in members.members { object[member.key] = member.value }
        }
        return .object(object)
    }

    static func withoutRecentEvents(_ status: JSONValue) -> JSONValue {
        guard case .object(let object) = status else { return status }
        return .object(JSONObject(object.members.filter { $0.key != "recentEvents" }))
    }

    /// What the feed no longer holds: the events the store has that were received after
    /// `lastEventID` (an id is a time in microseconds), oldest first, as `routed` messages marked
    /// `"replayed": true` with no sinks (their outcomes were not kept). Without an `id:`, so the
    /// client's `Last-Event-ID` stays where it was until live messages come.
    static func replay(from history: any StoreInspection, after lastEventID: Int64) async -> String {
        guard let events = try? await history.recentEvents(limit: storeReplayLimit) else { return "" }
        var text = ""
        for event in events.reversed() where event.receivedAtMilliseconds * 1000 > lastEventID {
            var summary = ActivityFeed.summary(event)
            summary["replayed"] = .bool(true)
            text += sse(name: "routed", id: nil, data: .object(summary))
        }
        return text
    }

    static func sse(_ entry: ActivityFeed.Entry) -> String {
        let message = ActivityFeed.message(entry)
        return sse(name: message.name, id: entry.id, data: message.data)
    }

    /// One message. The JSON is on one line (the writer escapes every newline), so one `data:` line.
    static func sse(name: String, id: Int64?, data: JSONValue) -> String {
        var text = id.map { "id: \($0)\n" } ?? ""
        text += "event: \(name)\ndata: \(data.serializedString)\n\n"
        return text
    }
}
