import CurlKit
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import GraphSimulator

/// Things that arrive over time (notifications, handshakes), awaited by predicate instead of
/// sleeping: the simulator's own awaitable log.
typealias Inbox = EventLog

extension EventLog {
    /// Waits until `ready(items)` holds (15 s by default).
    func wait(until ready: @escaping @Sendable ([Item]) -> Bool) async throws -> [Item] {
        try await wait(timeout: .seconds(15), until: ready)
    }

    /// Waits for the first item matching `predicate`.
    func first(timeout: Duration = .seconds(15), where predicate: @escaping @Sendable (Item) -> Bool) async throws -> Item {
        let items = try await wait(timeout: timeout) { $0.contains(where: predicate) }
        return items.first(where: predicate)!
    }
}

/// What the test subscriber received.
struct Received: Sendable {
    var path: String
    var query: String?
    /// The decoded `validationToken`, for handshakes.
    var validationToken: String?
    var contentType: String?
    var body: [UInt8]

    var json: JSONValue? { JSONValue.parse(body) }
    var items: [JSONValue] { json?["value"]?.arrayValue ?? [] }
}

/// A small webhook subscriber (Hummingbird on port 0) with scriptable answers per path.
final class Subscriber: Sendable {
    enum ValidationBehaviour: Sendable {
        case echo
        case wrongBody
        case status(Int)
        case delay(Duration)
    }

    private let script = Mutex<(validation: [String: ValidationBehaviour], statuses: [String: [Int]])>(([:], [:]))
    let handshakes = Inbox<Received>()
    let notifications = Inbox<Received>()
    let port = OneShot<Int>()

    func setValidation(_ behaviour: ValidationBehaviour, for path: String) {
        script.withLock { $0.validation[path] = behaviour }
    }

    /// The next notification POSTs to `path` answer these statuses, in order (then 202).
    func queueStatuses(_ statuses: [Int], for path: String) {
        script.withLock { $0.statuses[path, default: []] += statuses }
    }

    /// The subscriber's listener on `port` (0: any free port; the bound one goes to ``port``). Run
    /// it again on the same port to bring a stopped subscriber back.
    func makeApplication(port: Int = 0) -> some ApplicationProtocol {
        let router = Router()
        router.post("**") { request, _ in await self.handle(request) }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in self.port.set(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "subscriber", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    private func handle(_ request: Request) async -> Response {
        var request = request
        let body = (try? await request.collectBody(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
        let path = request.uri.path
        let token = request.uri.query.flatMap { query in FormEncoding.decode(query).first { $0.name == "validationToken" }?.value }
        let received = Received(path: path, query: request.uri.query, validationToken: token, contentType: request.headers[.contentType], body: body)
        if let token {
            handshakes.append(received)
            let behaviour = script.withLock { $0.validation[path] } ?? .echo
            switch behaviour {
            case .echo:
                return Self.text(.ok, token)
            case .wrongBody:
                return Self.text(.ok, token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "x")
            case .status(let code):
                return Self.text(HTTPResponse.Status(code: code), "no")
            case .delay(let duration):
                try? await Task.sleep(for: duration)
                return Self.text(.ok, token)
            }
        }
        notifications.append(received)
        let status = script.withLock { state -> Int in
            guard var queue = state.statuses[path], !queue.isEmpty else { return 202 }
            let next = queue.removeFirst()
            state.statuses[path] = queue
            return next
        }
        return Response(status: HTTPResponse.Status(code: status))
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A running simulator, a subscriber, and a libcurl client to drive them.
struct Live: Sendable {
    let simulator: GraphSimulator
    let subscriber: Subscriber
    let subscriberURL: String
    let client: CurlClient

    var graph: String { simulator.graphBaseURL }

    /// POSTs a form to `url`.
    func postForm(_ url: String, _ pairs: [(String, String)], headers: [(name: String, value: String)] = []) async throws -> CurlKit.HTTPResponse {
        try await client.execute(
            CurlKit.HTTPRequest(
                method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers,
                body: Array(FormEncoding.encode(pairs).utf8)))
    }

    /// A client-credentials token with the configured secret.
    func appToken() async throws -> String {
        let response = try await postForm(
            simulator.tokenURL,
            [
                ("client_id", simulator.configuration.clientID), ("client_secret", simulator.configuration.clientSecret ?? ""),
                ("scope", "https://graph.microsoft.com/.default"), ("grant_type", "client_credentials"),
            ])
        #expect(response.status == 200, "\(response.bodyText)")
        return try #require(response.json?["access_token"]?.stringValue)
    }

    /// A Graph call with a bearer token.
    func call(
        _ method: String, _ path: String, token: String?, json: JSONValue? = nil, headers: [(name: String, value: String)] = []
    ) async throws -> CurlKit.HTTPResponse {
        var all = headers
        if let token { all.append(("Authorization", "Bearer \(token)")) }
        if json != nil { all.append(("Content-Type", "application/json")) }
        let url = path.hasPrefix("http") ? path : graph + path
        return try await client.execute(CurlKit.HTTPRequest(method: method, url: url, headers: all, body: json?.bytes))
    }

    /// A subscription body with sensible defaults.
    func subscriptionBody(
        resource: String = "users/alice@contoso.com/mailFolders('Inbox')/messages",
        changeType: String = "created,updated,deleted",
        path: String = "/notify",
        lifecyclePath: String? = "/lifecycle",
        expiresIn: TimeInterval = 3600,
        clientState: String? = "secretClientValue"
    ) -> JSONValue {
        var body: JSONValue = .object([
            "changeType": .string(changeType),
            "notificationUrl": .string(subscriberURL + path),
            "resource": .string(resource),
            "expirationDateTime": .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(expiresIn))),
        ])
        if let clientState { body = body.setting("clientState", .string(clientState)) }
        if let lifecyclePath { body = body.setting("lifecycleNotificationUrl", .string(subscriberURL + lifecyclePath)) }
        return body
    }

    /// Creates a subscription and returns its id (expecting 201).
    func createSubscription(token: String, _ body: JSONValue) async throws -> String {
        let response = try await call("POST", "/subscriptions", token: token, json: body)
        #expect(response.status == 201, "\(response.bodyText)")
        return try #require(response.json?["id"]?.stringValue)
    }
}

extension CurlKit.HTTPResponse {
    var json: JSONValue? { JSONValue.parse(body) }
    var graphErrorCode: String? { json?["error"]?["code"]?.stringValue }
    var graphErrorMessage: String? { json?["error"]?["message"]?.stringValue }
}

/// One log entry a ``CollectingLogHandler`` kept.
struct LoggedLine: Sendable {
    var level: Logger.Level
    var message: String
    var metadata: [String: String]
}

/// Keeps every entry at or above `logLevel` in an awaitable log, so a test can assert what an operator sees.
struct CollectingLogHandler: LogHandler {
    let lines: EventLog<LoggedLine>
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        merged.merge(event.metadata ?? [:]) { _, new in new }
        lines.append(LoggedLine(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}

enum Harness {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A logger at `level` whose lines land in `lines`.
    static func collectingLogger(_ lines: EventLog<LoggedLine>, level: Logger.Level) -> Logger {
        Logger(label: "graph-simulator", factory: { _ in CollectingLogHandler(lines: lines, logLevel: level) })
    }

    /// Test timings: short retries, short handshake deadline.
    static func configuration() -> GraphSimulator.Configuration {
        var configuration = GraphSimulator.Configuration()
        configuration.retrySchedule = [.milliseconds(50), .milliseconds(100)]
        configuration.validationTimeout = .seconds(2)
        configuration.notificationTimeout = .seconds(2)
        configuration.deviceCodePollingInterval = 1
        return configuration
    }

    /// Runs a simulator and a subscriber on loopback port 0 around `body`, then shuts both down.
    static func withSimulator(
        _ configure: (inout GraphSimulator.Configuration) throws -> Void = { _ in },
        _ body: (Live) async throws -> Void
    ) async throws {
        var configuration = Self.configuration()
        try configure(&configuration)
        let simulator = try GraphSimulator(configuration: configuration, logger: logger)
        let subscriber = Subscriber()
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: simulator), .init(service: subscriber.makeApplication())], logger: logger))
        let client = CurlClient()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                _ = try await simulator.waitUntilReady()
                let subscriberPort = await subscriber.port.value()
                try await body(
                    Live(simulator: simulator, subscriber: subscriber, subscriberURL: "http://127.0.0.1:\(subscriberPort)", client: client))
            } catch {
                await group.triggerGracefulShutdown()
                await client.shutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            await client.shutdown()
            try await tasks.waitForAll()
        }
    }
}
