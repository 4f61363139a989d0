public import BridgeCore
public import Hummingbird
import HummingbirdCore
import NIOCore
import Prometheus

extension BridgeServer {
    /// The admin listener (`server.admin.listen`), a `Service` to run beside the public one:
    /// `/` (status page), `/status.json`, `/metrics`, `/healthz` and `/readyz`, each behind the
    /// Bearer token when `server.admin.token` is set. `onListening` receives the bound port.
    public func makeAdminApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        guard let admin = configuration.admin else { throw AdminListenerError() }
        let router = Router()
        if let token = admin.token {
            router.add(middleware: BearerTokenMiddleware(token: token))
        }
        let server = self
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .xContentTypeOptions: "nosniff"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        router.get("status.json") { _, _ in
            guard let provider = server.status else { return Self.text(.notFound, "no status\n") }
            return Self.json(.ok, await provider.status())
        }
        router.get("metrics") { _, _ in
            server.handleMetrics()
        }
        router.get("healthz") { _, _ in
            await server.handleAdminHealth()
        }
        router.get("readyz") { _, _ in
            await server.handleReadiness()
        }
        return makeApplication(
            router: router, listener: "admin", host: admin.host, port: admin.port,
            server: configuration.limits.serverBuilder(listener: "admin"), onListening: onListening
        )
    }

    /// 200 `{"status":"ok"}`, or 503 with the failing parts: `listener`, `store`, `journal`, `subscriptions`.
    func handleAdminHealth() async -> Response {
        var problems = await health.problems()
        if !publicListener.isSet { problems["listener"] = "the public listener is not accepting connections yet" }
        if problems.isEmpty { return Self.json(.ok, .object(["status": "ok"])) }
        return Self.json(.serviceUnavailable, .object(["status": "unhealthy", "problems": Self.object(problems)]))
    }

    /// 200 `{"status":"ready"}` once every managed subscription exists at Graph and has not
    /// expired and the store takes writes; 503 with the reasons otherwise.
    func handleReadiness() async -> Response {
        var problems = await health.readinessProblems()
        if !publicListener.isSet { problems["listener"] = "the public listener is not accepting connections yet" }
        if problems.isEmpty { return Self.json(.ok, .object(["status": "ready"])) }
        return Self.json(.serviceUnavailable, .object(["status": "not ready", "problems": Self.object(problems)]))
    }

    func handleMetrics() -> Response {
        guard let metrics else { return Self.text(.notFound, "metrics are not enabled\n") }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        metrics.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: MetricHelp.completing(buffer)))
        )
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static func object(_ problems: [String: String]) -> JSONValue {
        .object(JSONObject(problems.sorted { $0.key < $1.key }.map { JSONObject.Member(key: $0.key, value: .string($0.value)) }))
    }
}

/// `makeAdminApplication` without `Configuration.admin`.
struct AdminListenerError: Error, CustomStringConvertible {
    var description: String { "the admin listener is not configured" }
}

/// `server.admin.token`: every request needs `Authorization: Bearer TOKEN`, compared in constant
/// time; anything else is 401 with `WWW-Authenticate: Bearer`.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    init(token: String) {
        self.token = Array(token.utf8)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let presented = Self.bearer(request.headers[.authorization]), constantTimeEquals(presented.utf8, token) else {
            return Response(
                status: .unauthorized,
                headers: [
                    .wwwAuthenticate: #"Bearer realm="graph-bridge admin""#, .contentType: "text/plain; charset=utf-8", .cacheControl: "no-store",
                ],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "a Bearer token (server.admin.token) is required\n"))
            )
        }
        return try await next(request, context)
    }

    /// The credentials of an `Authorization: Bearer ...` header (the scheme is case-insensitive).
    static func bearer(_ header: String?) -> Substring? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        return header.dropFirst(7).drop { $0 == " " }
    }
}
