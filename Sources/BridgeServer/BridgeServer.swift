public import BridgeCore
import Foundation
public import Hummingbird
import HummingbirdTLS
public import Logging
import Metrics
import NIOCore
public import Prometheus

/// What `GET /healthz` checks.
public protocol HealthCheck: Sendable {
    /// Component name to problem; empty when all is well.
    func problems() async -> [String: String]
}

/// What the status page shows, as JSON (no secret ever: no clientState, no URL credentials).
public protocol StatusProvider: Sendable {
    func status() async -> JSONValue
}

/// The HTTP endpoints Graph and operators call (SPEC section 5), on Hummingbird.
public struct BridgeServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var maxBodyBytes: Int
        /// HTTPS when set (`server.tls`), plain HTTP otherwise.
        public var tls: ServerTLS?

        public init(host: String, port: Int, maxBodyBytes: Int, tls: ServerTLS? = nil) {
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.tls = tls
        }
    }

    let configuration: Configuration
    let intake: NotificationIntake
    let health: any HealthCheck
    let metrics: PrometheusCollectorRegistry?
    let status: (any StatusProvider)?
    let logger: Logger
    /// Made once: a metric handle per request would cost a registry lookup on the 202 path.
    let ackTimers: [NotificationIntake.Endpoint: Timer]

    public init(configuration: Configuration, intake: NotificationIntake, health: any HealthCheck, metrics: PrometheusCollectorRegistry?,
                status: (any StatusProvider)? = nil, logger: Logger) {
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

    /// The Hummingbird application, a `Service` to run in the bridge's service group.
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
            await server.handleHealth()
        }
        router.get("metrics") { _, _ in
            server.handleMetrics()
        }
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        router.get("status.json") { _, _ in
            guard let provider = server.status else { return Self.text(.notFound, "no status\n") }
            let json = await provider.status()
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: json.serialized())))
        }
        let logger = self.logger
        let scheme = configuration.tls == nil ? "http" : "https"
        return Application(
            router: router,
            server: try configuration.tls.map { try .tls(.http1(), tlsConfiguration: $0.configuration()) } ?? .http1(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "graph-bridge"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? server.configuration.port
                logger.notice("listening", metadata: [
                    "bridge.address": "\(server.configuration.host):\(port)", "bridge.port": "\(port)", "bridge.scheme": "\(scheme)",
                ])
                await onListening(port)
            },
            logger: logger
        )
    }

    // MARK: Handlers

    func handleNotification(_ request: Request, endpoint: NotificationIntake.Endpoint) async -> Response {
        if let token = Self.validationToken(inQuery: request.uri.query) {
            logger.info("answered a validation handshake", metadata: ["bridge.endpoint": "\(endpoint.rawValue)"])
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: token))
            )
        }
        let started = ContinuousClock.now
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            Counter(label: "graph_bridge_requests_rejected_total", dimensions: [("endpoint", endpoint.rawValue), ("reason", "too_large")]).increment()
            logger.warning("rejected a notification body over server.maxBodyBytes", metadata: ["bridge.limit": "\(configuration.maxBodyBytes)"])
            return Self.text(.contentTooLarge, "body larger than \(configuration.maxBodyBytes) bytes\n")
        } catch {
            return Self.text(.badRequest, "could not read the body\n")
        }
        let outcome = await intake.receive(body: body.readableBytesView, endpoint: endpoint)
        ackTimers[endpoint]?.recordElapsed(ContinuousClock.now - started)
        switch outcome.status {
        case 202: return Response(status: .accepted)
        case 400: return Self.text(.badRequest, (outcome.reason ?? "malformed notification") + "\n")
        default: return Self.text(.serviceUnavailable, (outcome.reason ?? "unavailable") + "\n", retryAfter: 5)
        }
    }

    func handleHealth() async -> Response {
        let problems = await health.problems()
        if problems.isEmpty { return Self.text(.ok, "ok\n") }
        let lines = problems.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        return Self.text(.serviceUnavailable, lines.joined(separator: "\n") + "\n")
    }

    func handleMetrics() -> Response {
        guard let metrics else { return Self.text(.notFound, "metrics are not enabled\n") }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        metrics.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer))
        )
    }

    static func text(_ status: HTTPResponse.Status, _ text: String, retryAfter: Int? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
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
