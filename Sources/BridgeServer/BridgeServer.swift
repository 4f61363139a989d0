public import BridgeCore
import Foundation
public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
import Metrics
import NIOCore
public import Prometheus
import Synchronization

/// What the health and readiness endpoints check.
public protocol HealthCheck: Sendable {
    /// Component name to problem; empty when all is well (the admin listener's `/healthz`).
    func problems() async -> [String: String]
    /// Whether notifications can be taken now (the public listener's `/healthz`, which says one
    /// word and no more). By default: no problem at all.
    func acceptsNotifications() async -> Bool
    /// Component name to what keeps the bridge from being ready (the admin listener's `/readyz`);
    /// empty when ready. By default: its problems.
    func readinessProblems() async -> [String: String]
}

extension HealthCheck {
    public func acceptsNotifications() async -> Bool { await problems().isEmpty }
    public func readinessProblems() async -> [String: String] { await problems() }
}

/// What the status page shows, as JSON (no secret ever: no clientState, no URL credentials).
public protocol StatusProvider: Sendable {
    func status() async -> JSONValue
}

/// The HTTP endpoints (SPEC section 5), on Hummingbird, in two listeners:
/// - the public one (`server.listen`), which Graph and so the internet reaches: only
///   `POST /notifications`, `POST /lifecycle` and a one-word `GET /healthz`;
/// - the admin one (`server.admin.listen`, loopback by default): the status page,
///   `/status.json`, `/metrics`, `/healthz` and `/readyz`, behind a Bearer token when one is set.
public struct BridgeServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var maxBodyBytes: Int
        /// HTTPS when set (`server.tls`), plain HTTP otherwise. The admin listener is always plain HTTP.
        public var tls: ServerTLS?
        /// Timeouts and the connection cap, the same for both listeners.
        public var limits: ConnectionLimits
        /// The admin listener; `makeAdminApplication` needs it.
        public var admin: Admin?

        /// `server.admin`.
        public struct Admin: Sendable {
            public var host: String
            public var port: Int
            /// The Bearer token every request must carry; nil on a loopback address lets anyone on this machine in.
            public var token: String?

            public init(host: String, port: Int, token: String? = nil) {
                self.host = host
                self.port = port
                self.token = token
            }
        }

        public init(host: String, port: Int, maxBodyBytes: Int, tls: ServerTLS? = nil, limits: ConnectionLimits = .default, admin: Admin? = nil) {
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.tls = tls
            self.limits = limits
            self.admin = admin
        }
    }

    /// The `Server` header of every answer.
    static let serverName = "graph-bridge"

    /// Validation tokens longer than this (after decoding) are refused: Graph's are far shorter,
    /// and the answer echoes the token.
    public static let maxValidationTokenBytes = 1024

    let configuration: Configuration
    let intake: NotificationIntake
    let health: any HealthCheck
    let metrics: PrometheusCollectorRegistry?
    let status: (any StatusProvider)?
    /// The admin listener's `/events` and the live status page; nil: `/events` is 404.
    let events: EventStream?
    let logger: Logger
    /// Made once: a metric handle per request would cost a registry lookup on the 202 path.
    let ackTimers: [NotificationIntake.Endpoint: Timer]
    /// Whether the public listener accepts connections (the admin `/healthz` reports it).
    let publicListener = ListenerFlag()

    public init(configuration: Configuration, intake: NotificationIntake, health: any HealthCheck, metrics: PrometheusCollectorRegistry?,
                status: (any StatusProvider)? = nil, events: EventStream? = nil, logger: Logger) {
        self.events = events
        self.configuration = configuration
        self.intake = intake
        self.health = health
        self.metrics = metrics
        self.status = status
        self.logger = logger
        ackTimers = Dictionary(uniqueKeysWithValues: [NotificationIntake.Endpoint.notifications, .lifecycle].map { endpoint in
            (endpoint, Timer(label: "graph_bridge_ack_seconds", dimensions: [("endpoint", endpoint.rawValue)], preferredDisplayUnit: .seconds))
        })
    }

    /// The public listener, a `Service` to run in the bridge's service group.
    /// `onListening` receives the bound port (useful with port 0).
    public func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let router = Router()
        let server = self
        router.post("notifications") { request, _ in
            await server.handleNotification(request, endpoint: .notifications)
        }
        router.post("lifecycle") { request, _ in
            await server.handleNotification(request, endpoint: .lifecycle)
        }
        router.get("healthz") { _, _ in
            await server.health.acceptsNotifications() ? Self.text(.ok, "ok\n") : Self.text(.serviceUnavailable, "unavailable\n")
        }
        let (intake, maxBodyBytes, ackTimers, logger) = (intake, configuration.maxBodyBytes, ackTimers, logger)
        let hops = LoopHop.Registry()
        let http = configuration.limits.serverBuilder(listener: "public") {
            NotificationChannelHandler(
                intake: intake, maxBodyBytes: maxBodyBytes, ackTimers: ackTimers, serverName: Self.serverName, hops: hops, logger: logger)
        }
        return makeApplication(
            router: router, listener: "public", host: configuration.host, port: configuration.port,
            server: try configuration.tls.map { try .tls(http, tlsConfiguration: $0.configuration()) } ?? http,
            onListening: { port in
                server.publicListener.set()
                await onListening(port)
            }
        )
    }

    /// Hummingbird's application for one listener: the connection cap, one `listening` log line.
    func makeApplication(
        router: Hummingbird.Router<BasicRequestContext>, listener: String, host: String, port: Int, server: HTTPServerBuilder,
        onListening: @escaping @Sendable (Int) async -> Void
    ) -> some ApplicationProtocol {
        let logger = self.logger
        let scheme = listener == "public" && configuration.tls != nil ? "https" : "http"
        // Hummingbird logs its own "Server started and listening" at info: one line per listener is enough.
        var frameworkLogger = logger
        frameworkLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(host, port: port), serverName: Self.serverName,
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.limits.maxConnections, logger: frameworkLogger)
            ),
            onServerRunning: { channel in
                await ConnectionLimits.limitAccepts(on: channel)
                let bound = channel.localAddress?.port ?? port
                logger.notice("listening", metadata: [
                    "bridge.listener": "\(listener)", "bridge.address": "\(host):\(bound)", "bridge.port": "\(bound)", "bridge.scheme": "\(scheme)",
                ])
                await onListening(bound)
            },
            logger: frameworkLogger
        )
    }

    // MARK: Handlers

    func handleNotification(_ request: Request, endpoint: NotificationIntake.Endpoint) async -> Response {
        if let token = Self.validationToken(inQuery: request.uri.query) {
            guard token.utf8.count <= Self.maxValidationTokenBytes else {
                // Counted, not logged at warning: anyone can send these.
                Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "token_too_long")]).increment()
                logger.debug("refused a validation handshake with a token over 1 KiB", metadata: ["bridge.endpoint": "\(endpoint.rawValue)"])
                return Self.text(.badRequest, "validationToken longer than \(Self.maxValidationTokenBytes) bytes\n")
            }
            logger.info("answered a validation handshake", metadata: ["bridge.endpoint": "\(endpoint.rawValue)"])
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; charset=utf-8", .xContentTypeOptions: "nosniff"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: token))
            )
        }
        let started = ContinuousClock.now
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return Answer.tooLarge(configuration.maxBodyBytes, endpoint: endpoint, logger: logger).response
        } catch {
            return Self.text(.badRequest, "could not read the body\n")
        }
        let outcome = await intake.receive(body: body.readableBytesView, endpoint: endpoint)
        ackTimers[endpoint]?.recordElapsed(ContinuousClock.now - started)
        return Answer(outcome).response
    }

    static func text(_ status: HTTPResponse.Status, _ text: String, retryAfter: Int? = nil) -> Response {
        Answer(status: status, text: text, retryAfter: retryAfter).response
    }

    /// The `validationToken` query parameter, URL-decoded with `+` as a space (Graph uses both
    /// `%20` and `+`); nil when absent.
    public static func validationToken(inQuery query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "validationToken" else { continue }
            let raw = parts.count > 1 ? String(parts[1]) : ""
            let spaced = raw.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        return nil
    }
}

/// Set once, read by any thread: whether a listener accepts connections.
final class ListenerFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
