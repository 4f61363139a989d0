import BridgeCore
public import Hummingbird
import HummingbirdCore
import NIOCore
import Prometheus

extension BridgeServer {
    /// The admin listener (`server.admin.listen`), a `Service` to run beside the public one:
    /// `/` (status page), `/events` (Server-Sent Events), `/status.json`, `/metrics`, `/healthz`
    /// and `/readyz`, each behind the Bearer token when `server.admin.token` is set (or, for a
    /// browser, a session cookie from `POST /login`: see ``AdminSessions``). `onListening`
    /// receives the bound port.
    public func makeAdminApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        guard let admin = configuration.admin else { throw AdminListenerError() }
        let router = Router()
        let server = self
        if let token = admin.token {
            let sessions = AdminSessions()
            router.add(middleware: BearerTokenMiddleware(token: token, sessions: sessions))
            router.post("login") { request, _ in
                await Self.handleLogin(request, token: token, sessions: sessions)
            }
        }
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .xContentTypeOptions: "nosniff"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        router.get("events") { request, _ in
            server.handleEvents(request)
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

    /// `POST /login` with the form of the sign-in page: a correct token gets a session cookie and a
    /// redirect to the page; a wrong one the form again (401).
    static func handleLogin(_ request: Request, token: String, sessions: AdminSessions) async -> Response {
        var request = request
        let body = (try? await request.collectBody(upTo: 4096)).map { String(buffer: $0) } ?? ""
        guard let presented = AdminSessions.formValue(named: "token", in: body), constantTimeEquals(presented.utf8, token.utf8) else {
            return BearerTokenMiddleware<BasicRequestContext>.refusal(page: true, message: "That token is not the admin token.")
        }
        return Response(
            status: .seeOther,
            headers: [.location: "./", .setCookie: sessions.setCookie(sessions.open()), .cacheControl: "no-store"]
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
/// time, or a session cookie a browser got from `POST /login` (``AdminSessions``); anything else
/// is 401 with `WWW-Authenticate: Bearer` (for `GET /`, with the sign-in form as its page).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]
    let sessions: AdminSessions

    init(token: String, sessions: AdminSessions = AdminSessions()) {
        self.token = Array(token.utf8)
        self.sessions = sessions
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .post, request.uri.path == "/login" { return try await next(request, context) }
        if let presented = Self.bearer(request.headers[.authorization]), constantTimeEquals(presented.utf8, token) {
            return try await next(request, context)
        }
        if sessions.admits(cookieHeader: request.headers[.cookie]) { return try await next(request, context) }
        return Self.refusal(page: request.method == .get && request.uri.path == "/", message: nil)
    }

    /// 401: the sign-in form for the page, one line of text for anything else.
    static func refusal(page: Bool, message: String?) -> Response {
        var headers: HTTPFields = [.wwwAuthenticate: #"Bearer realm="graph-bridge admin""#, .cacheControl: "no-store"]
        headers[.contentType] = page ? "text/html; charset=utf-8" : "text/plain; charset=utf-8"
        if page { headers[.xContentTypeOptions] = "nosniff" }
        let body = page ? StatusPage.signIn(message: message) : "a Bearer token (server.admin.token) is required\n"
        return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// The credentials of an `Authorization: Bearer ...` header (the scheme is case-insensitive).
    static func bearer(_ header: String?) -> Substring? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        return header.dropFirst(7).drop { $0 == " " }
    }
}
