import Foundation
import Synchronization

/// Outlook's concurrency limit and JSON `$batch`, as Graph behaves under load:
///
/// - At most ``MailboxLoad/limit`` (4) requests to one mailbox (`me/...`, `users/{id}/...`) are
///   served at once; one more answers 429 `MailboxConcurrency` with `Retry-After: 1`. Requests
///   inside a `$batch` count one each. The peak per mailbox is recorded for tests.
/// - ``GraphSimulator/throttleMailbox(_:retryAfter:)`` makes every request to a mailbox answer 429
///   `ApplicationThrottled` with `Retry-After` until it is lifted.
/// - `POST /v1.0/$batch` takes `{"requests": [{"id", "method", "url", "headers"?, "body"?}]}`,
///   1 to 20 of them, serves them concurrently (each as if sent alone: faults, authentication with
///   the batch's bearer token, the mailbox limit) and answers 200 with
///   `{"responses": [{"id", "status", "headers", "body"}]}` in request order. Faults injected on
///   ``SimulatedEndpoint/batch`` answer for the whole batch.
final class MailboxLoad: Sendable {
    /// Outlook's limit of concurrent requests per mailbox.
    static let limit = 4

    private struct State {
        var inFlight: [String: Int] = [:]
        var peak: [String: Int] = [:]
        var throttled: [String: Int] = [:]
    }

    private let state = Mutex(State())

    enum Admission {
        case admitted
        case tooMany
        case throttled(retryAfter: Int)
    }

    func enter(_ mailbox: String) -> Admission {
        state.withLock { state in
            if let seconds = state.throttled[mailbox] { return .throttled(retryAfter: seconds) }
            let current = state.inFlight[mailbox, default: 0]
            guard current < Self.limit else { return .tooMany }
            state.inFlight[mailbox] = current + 1
            state.peak[mailbox] = max(state.peak[mailbox, default: 0], current + 1)
            return .admitted
        }
    }

    func leave(_ mailbox: String) {
        state.withLock { $0.inFlight[mailbox, default: 1] -= 1 }
    }

    func peak(_ mailbox: String) -> Int { state.withLock { $0.peak[mailbox, default: 0] } }

    func resetPeaks() { state.withLock { $0.peak = [:] } }

    func throttle(_ mailbox: String, retryAfter: Int?) {
        state.withLock { $0.throttled[mailbox] = retryAfter }
    }
}

extension GraphSimulator {
    /// The most requests to `mailbox` (UPN or id) that were served at once since the start (or
    /// ``resetPeakConcurrency()``).
    public func peakConcurrentRequests(mailbox: String) -> Int {
        mailboxLoad.peak(user(matching: mailbox)?.id ?? mailbox.lowercased())
    }

    /// Forgets the recorded peaks.
    public func resetPeakConcurrency() { mailboxLoad.resetPeaks() }

    /// Every request to `mailbox` (UPN or id) answers 429 `ApplicationThrottled` with this
    /// `Retry-After` (seconds) from now on; nil lifts it.
    public func throttleMailbox(_ mailbox: String, retryAfter seconds: Int?) {
        mailboxLoad.throttle(user(matching: mailbox)?.id ?? mailbox.lowercased(), retryAfter: seconds)
    }

    /// The mailbox a Graph path (after `v1.0`) reads, by user id; nil for paths outside mailboxes.
    func mailboxKey(_ request: IncomingRequest, path: [String]) -> String? {
        let lowered = path.map { $0.lowercased() }
        if lowered.first == "me", lowered.count >= 2 {
            guard case .success(let caller) = authenticate(request), let userID = caller.userID else { return nil }
            return userID
        }
        if lowered.first == "users", lowered.count >= 3 {
            return user(matching: path[1])?.id ?? lowered[1]
        }
        return nil
    }

    /// Serves `body` within the mailbox's concurrency limit (see ``MailboxLoad``).
    func withinMailboxLimit(
        _ request: IncomingRequest, path: [String], exchange: GraphExchange, _ body: () async -> OutgoingResponse
    ) async -> OutgoingResponse {
        guard let mailbox = mailboxKey(request, path: path) else { return await body() }
        switch mailboxLoad.enter(mailbox) {
        case .admitted:
            defer { mailboxLoad.leave(mailbox) }
            return await body()
        case .tooMany:
            return exchange.error(
                429, code: "MailboxConcurrency", message: "Application is over its MailboxConcurrency limit.", headers: [("Retry-After", "1")])
        case .throttled(let seconds):
            return exchange.error(
                429, code: "ApplicationThrottled", message: "Application is over its IncomingBytes limit.",
                headers: [("Retry-After", String(seconds))])
        }
    }

    /// `POST /v1.0/$batch` (see ``MailboxLoad``).
    func handleBatch(_ request: IncomingRequest, exchange: GraphExchange) async -> OutgoingResponse {
        guard request.method == "POST" else {
            return exchange.error(405, code: "Request_BadRequest", message: "Specified HTTP method is not allowed for the request target.")
        }
        if let response = await faultResponse(for: .batch, isGraph: false, exchange: exchange) { return response }
        guard let document = JSONValue.parse(request.body), let requests = document["requests"]?.arrayValue else {
            return exchange.error(400, code: "BadRequest", message: "Invalid batch payload format.")
        }
        guard !requests.isEmpty, requests.count <= 20 else {
            return exchange.error(400, code: "BadRequest", message: "The number of batch requests must be between 1 and 20.")
        }
        var inner: [(id: String, request: IncomingRequest, path: [String])] = []
        var ids: Set<String> = []
        for item in requests {
            guard let id = item["id"]?.stringValue, let method = item["method"]?.stringValue, let url = item["url"]?.stringValue else {
                return exchange.error(400, code: "BadRequest", message: "Each batch request needs an id, a method and a url.")
            }
            guard ids.insert(id).inserted else {
                return exchange.error(400, code: "BadRequest", message: "Batch request ids must be unique: '\(id)' repeats.")
            }
            let relative = url.hasPrefix("/") ? url : "/" + url
            let parts = relative.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0].lowercased() != "/$batch" else {
                return exchange.error(400, code: "BadRequest", message: "A batch request cannot hold another batch.")
            }
            var headers = request.headers.filter { ["authorization", "client-request-id"].contains($0.name.lowercased()) }
            if case .object(let members) = item["headers"] ?? .null {
                for member in members { if let value = member.value.stringValue { headers.append((member.key, value)) } }
            }
            let body = item["body"].map { $0.isNull ? [] : $0.bytes } ?? []
            let incoming = IncomingRequest(
                method: method.uppercased(), path: "/v1.0" + parts[0], query: parts.count > 1 ? String(parts[1]) : nil, headers: headers, body: body)
            inner.append((id, incoming, Array(incoming.segments.dropFirst())))
        }
        let answers = await withTaskGroup(of: (Int, OutgoingResponse).self) { group in
            for (index, item) in inner.enumerated() {
                group.addTask {
                    let response = await self.handleGraph(item.request, path: item.path)
                    self.record(item.request, status: response.status)
                    return (index, response)
                }
            }
            var answers = [OutgoingResponse?](repeating: nil, count: inner.count)
            for await (index, response) in group { answers[index] = response }
            return answers
        }
        let responses: [JSONValue] = zip(inner, answers).map { item, answer in
            let response = answer ?? OutgoingResponse.empty(500)
            var headers: [JSONValue.Member] = []
            for header in response.headers where ["retry-after", "content-type", "location"].contains(header.name.lowercased()) {
                headers.append(.init(header.name, .string(header.value)))
            }
            var members: [JSONValue.Member] = [
                .init("id", .string(item.id)), .init("status", .int(response.status)), .init("headers", .object(headers)),
            ]
            if !response.body.isEmpty {
                members.append(.init("body", JSONValue.parse(response.body) ?? .string(String(decoding: response.body, as: UTF8.self))))
            }
            return .object(members)
        }
        return exchange.json(200, .object(["responses": .array(responses)]))
    }
}
