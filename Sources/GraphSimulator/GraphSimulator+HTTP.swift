import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A request as the simulator's handlers see it: no Hummingbird types, so the handlers are plain functions.
struct IncomingRequest: Sendable {
    var method: String
    /// The raw path, still percent-encoded.
    var path: String
    var query: String?
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    /// Path segments, percent-decoded (`+` stays `+` in paths).
    var segments: [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
    }

    /// Query parameters, decoded (`+` is a space).
    var queryItems: [(name: String, value: String)] { query.map { FormEncoding.decode($0) } ?? [] }

    /// The first query parameter called `name`, compared case-insensitively (OData `$select` and `$SELECT` alike).
    func queryValue(_ name: String) -> String? {
        let wanted = name.lowercased()
        return queryItems.first { $0.name.lowercased() == wanted }?.value
    }

    func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// A response before it becomes a Hummingbird `Response`.
struct OutgoingResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []

    static func json(_ status: Int, _ value: JSONValue, contentType: String = "application/json; charset=utf-8") -> OutgoingResponse {
        OutgoingResponse(status: status, headers: [("Content-Type", contentType)], body: value.bytes)
    }

    static func text(_ status: Int, _ text: String) -> OutgoingResponse {
        OutgoingResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }

    static func empty(_ status: Int) -> OutgoingResponse { OutgoingResponse(status: status) }
}

/// Hands every request to ``GraphSimulator/handle(_:)`` and records it.
struct SimulatorResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let simulator: GraphSimulator

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: 8 << 20)
        let incoming = IncomingRequest(
            method: request.method.rawValue,
            path: request.uri.path,
            query: request.uri.query,
            headers: request.headers.map { ($0.name.rawName, $0.value) },
            body: Array(buffer: buffer)
        )
        let outgoing = await simulator.handle(incoming)
        simulator.record(incoming, status: outgoing.status)
        var fields = HTTPFields()
        for header in outgoing.headers {
            if let name = HTTPFields.Element.Name(header.name) { fields.append(HTTPFields.Element(name: name, value: header.value)) }
        }
        return Response(
            status: HTTPResponse.Status(code: outgoing.status),
            headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: outgoing.body))
        )
    }
}

extension GraphSimulator {
    func makeApplication() -> some ApplicationProtocol {
        let readiness = self.readiness
        let logger = self.logger
        return Application(
            responder: SimulatorResponder(simulator: self),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            services: [DeliveryService(simulator: self)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("graph simulator listening", metadata: ["bridge.port": "\(port)"])
                readiness.set(port)
            },
            logger: logger
        )
    }

    func record(_ request: IncomingRequest, status: Int) {
        let entry = RecordedRequest(
            method: request.method, path: request.path, query: request.query, headers: request.headers, body: request.body, status: status,
            date: Date())
        requestLog.append(entry)
    }

    /// Routes one request. Identity platform paths start with a tenant; Graph paths with `v1.0`.
    func handle(_ request: IncomingRequest) async -> OutgoingResponse {
        let segments = request.segments
        let lowered = segments.map { $0.lowercased() }
        if lowered.first == "v1.0" {
            return await handleGraph(request, path: Array(segments.dropFirst()))
        }
        if lowered.count == 4, lowered[1] == "oauth2", lowered[2] == "v2.0", lowered[3] == "token" || lowered[3] == "devicecode" {
            guard request.method == "POST" else { return .text(405, "method not allowed\n") }
            let endpoint: SimulatedEndpoint = lowered[3] == "token" ? .token : .deviceCode
            if let fault = state.withLock({ $0.takeFault(for: endpoint, isGraph: false) }) {
                if let response = await identityFaultResponse(fault) { return response }
            }
            return endpoint == .token ? handleToken(request, tenant: segments[0]) : handleDeviceCode(request, tenant: segments[0])
        }
        if request.method == "GET", lowered.count == 4, lowered[1] == "v2.0", lowered[2] == ".well-known", lowered[3] == "openid-configuration" {
            return handleOpenIDConfiguration(tenant: segments[0])
        }
        if request.method == "GET", lowered.count >= 3, lowered[1] == "discovery", lowered.last == "keys" {
            return .json(200, jwks())
        }
        return .text(404, "not found\n")
    }
}
