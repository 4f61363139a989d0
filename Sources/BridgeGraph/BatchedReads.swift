import BridgeCore
import Foundation
import GraphClient
import Synchronization

/// The reads `fetch:` makes, within Outlook's limits and grouped into JSON `$batch` requests.
///
/// - At most `perMailbox` reads of one mailbox are in flight at once, each read inside a `$batch`
///   counting one (Outlook answers a fifth with 429 `MailboxConcurrency`). A read whose mailbox is
///   full waits in line; reads of other mailboxes go past it.
/// - At most `concurrentCalls` HTTP calls are in flight. A read that finds a call free goes out
///   at once, as a plain GET; the reads that queue up meanwhile go out together as one
///   `POST /$batch` of up to 20 when a call is free again: no read waits for a batch to fill.
/// - A call answered 429/503 (the whole `$batch`, or a GET) and an inner response 429/503 come
///   back as ``Outcome/retry(after:_:)`` with that `Retry-After`: the reader waits that long,
///   holding neither a call nor the mailbox's slot, before reading again.
final class BatchedReads: Sendable {
    /// What one read came to.
    enum Outcome: Sendable {
        case item(JSONValue)
        case failed(GraphError)
        /// Throttled or unavailable: read again after this wait (nil: none was given).
        case retry(after: Duration?, GraphError)
    }

    private struct Read {
        var id: Int
        /// Relative to the Graph base, starting with `/`, with its query.
        var path: String
        var mailbox: String
    }

    private struct State {
        /// Reads waiting for a call, in arrival order.
        var queue: [Read] = []
        /// The readers still waiting for an answer (queued or in flight), by read id.
        var readers: [Int: CheckedContinuation<Outcome, any Error>] = [:]
        var inFlight: [String: Int] = [:]
        var calls = 0
        var nextID = 0
    }

    /// Graph's limit of requests in one `$batch`.
    static let batchLimit = 20

    let graph: GraphClient
    let perMailbox: Int
    let concurrentCalls: Int
    private let state = Mutex(State())

    init(graph: GraphClient, perMailbox: Int, concurrentCalls: Int) {
        // Throttling is waited out by the reader (`Outcome.retry`), not inside a call, which
        // would hold a call slot and the mailbox's while it waits.
        self.graph = graph.retrying(atMost: 0)
        self.perMailbox = max(1, perMailbox)
        self.concurrentCalls = max(1, concurrentCalls)
    }

    /// Reads `path` (relative to the Graph base, with its query). Throws `CancellationError` at
    /// once when the caller is cancelled, also while the read is in flight (its answer is dropped).
    func read(_ path: String) async throws -> Outcome {
        let path = path.hasPrefix("/") ? path : "/" + path
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.queue.append(Read(id: id, path: path, mailbox: Self.mailbox(of: path)))
                    state.readers[id] = continuation
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    pump()
                }
            }
        } onCancel: {
            let reader = state.withLock { state -> CheckedContinuation<Outcome, any Error>? in
                state.queue.removeAll { $0.id == id }
                return state.readers.removeValue(forKey: id)
            }
            reader?.resume(throwing: CancellationError())
        }
    }

    /// Sends what may go: groups of queued reads whose mailboxes have room, while calls are free.
    private func pump() {
        let groups = state.withLock { state -> [[Read]] in
            var groups: [[Read]] = []
            while state.calls < concurrentCalls, !state.queue.isEmpty {
                var group: [Read] = []
                var rest: [Read] = []
                for read in state.queue {
                    if group.count < Self.batchLimit, state.inFlight[read.mailbox, default: 0] < perMailbox {
                        state.inFlight[read.mailbox, default: 0] += 1
                        group.append(read)
                    } else {
                        rest.append(read)
                    }
                }
                guard !group.isEmpty else { break }
                state.queue = rest
                state.calls += 1
                groups.append(group)
            }
            return groups
        }
        for group in groups {
            // The call outlives a cancelled reader (whose answer is then dropped); it ends with
            // curl's timeout at the latest.
            Task { await self.send(group) }
        }
    }

    private func send(_ group: [Read]) async {
        let outcomes: [Outcome]
        if group.count == 1 {
            outcomes = [await single(group[0].path)]
        } else {
            outcomes = await batch(group.map(\.path))
        }
        let resumes = state.withLock { state -> [(CheckedContinuation<Outcome, any Error>, Outcome)] in
            state.calls -= 1
            var resumes: [(CheckedContinuation<Outcome, any Error>, Outcome)] = []
            for (read, outcome) in zip(group, outcomes) {
                state.inFlight[read.mailbox, default: 1] -= 1
                if state.inFlight[read.mailbox] == 0 { state.inFlight[read.mailbox] = nil }
                if let reader = state.readers.removeValue(forKey: read.id) { resumes.append((reader, outcome)) }
            }
            return resumes
        }
        for (continuation, outcome) in resumes { continuation.resume(returning: outcome) }
        pump()
    }

    private func single(_ path: String) async -> Outcome {
        do {
            let response = try await graph.send("GET", path, operation: "get_item")
            return .item(try JSONParser.parse(response.body, maxDepth: 128))
        } catch let error as GraphError {
            return error.isTransient ? .retry(after: error.retryAfter, error) : .failed(error)
        } catch let error as JSONParseError {
            return .failed(
                GraphError(kind: .other, status: 200, code: nil, message: "GET \(path) answered with invalid JSON: \(error)", requestID: nil))
        } catch {
            return .retry(after: nil, GraphError(kind: .transport, status: 0, code: nil, message: "\(error)", requestID: nil))
        }
    }

    /// One `POST /$batch`; an outcome per path, in order.
    private func batch(_ paths: [String]) async -> [Outcome] {
        var requests: [JSONValue] = []
        for (index, path) in paths.enumerated() {
            requests.append(.object(["id": .string(String(index + 1)), "method": "GET", "url": .string(path)]))
        }
        let body = JSONValue.object(["requests": .array(requests)]).serialized()
        let answers: [JSONValue]
        do {
            let response = try await graph.send("POST", "/$batch", operation: "batch", json: body)
            answers = try JSONParser.parse(response.body, maxDepth: 160)["responses"]?.arrayValue ?? []
        } catch let error as GraphError {
            let outcome: Outcome = error.isTransient ? .retry(after: error.retryAfter, error) : .failed(error)
            return paths.map { _ in outcome }
        } catch {
            let failure = GraphError(
                kind: .other, status: 200, code: nil, message: "POST /$batch answered with invalid JSON: \(error)", requestID: nil)
            return paths.map { _ in .failed(failure) }
        }
        var byID: [String: JSONValue] = [:]
        for answer in answers { if let id = answer["id"]?.stringValue { byID[id] = answer } }
        return paths.enumerated().map { index, path in
            guard let answer = byID[String(index + 1)] else {
                return .retry(
                    after: nil,
                    GraphError(kind: .serverError, status: 0, code: nil, message: "POST /$batch gave no answer for GET \(path)", requestID: nil))
            }
            return Self.outcome(of: answer, path: path)
        }
    }

    /// One inner response of a `$batch`: `{"id", "status", "headers", "body"}`.
    static func outcome(of answer: JSONValue, path: String) -> Outcome {
        let status = answer["status"]?.scalarText.flatMap { Int($0) } ?? 0
        let body = answer["body"] ?? .null
        if (200..<300).contains(status) { return .item(body) }
        var retryAfter: Duration?
        if let headers = answer["headers"]?.objectValue {
            for member in headers.members where member.key.lowercased() == "retry-after" {
                if let seconds = member.value.scalarText.flatMap({ Int64($0.trimmingCharacters(in: .whitespaces)) }) {
                    retryAfter = .seconds(seconds)
                }
            }
        }
        let inner = body["error"]
        let error = GraphError(
            kind: status == 404 || status == 410 ? .notFound : [408, 429].contains(status) ? .throttled : status >= 500 ? .serverError : .other,
            status: status, code: inner?["code"]?.stringValue,
            message: inner?["message"]?.stringValue ?? "GET \(path) answered \(status) inside $batch",
            requestID: inner?["innerError"]?["request-id"]?.stringValue, retryAfter: retryAfter)
        return error.isTransient ? .retry(after: retryAfter, error) : .failed(error)
    }

    /// `users/{id}` or `me` (lowercased) for a mailbox path; the first two segments of any other.
    static func mailbox(of path: String) -> String {
        let segments =
            path.split(separator: "?", maxSplits: 1).first.map { $0.lowercased() }?.split(separator: "/", omittingEmptySubsequences: true) ?? []
        if segments.first == "me" { return "me" }
        return segments.prefix(2).joined(separator: "/")
    }
}
