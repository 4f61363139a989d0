import BridgeCore
import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// The listener, live on 127.0.0.1 with a real SQLite journal, driven over HTTP by CurlKit.
@Suite("listener")
struct ListenerTests {
    static let subscriptionID = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    struct Live {
        let baseURL: String
        let store: SQLiteStateStore
        let client: CurlClient
        /// What the client trusts when the listener serves HTTPS.
        var tls: TLSOptions? = nil
        var port: Int = 0
        /// The admin listener's URL, when one runs.
        var adminURL: String? = nil
        /// Begins the graceful shutdown that `withListener` otherwise begins once the body returns.
        var stopListening: @Sendable () async -> Void = {}

        func post(_ path: String, body: [UInt8] = [], contentType: String = "application/json") async throws -> CurlKit.HTTPResponse {
            try await client.execute(HTTPRequest(method: "POST", url: baseURL + path, headers: [("Content-Type", contentType)], body: body), tls: tls)
        }

        func get(_ path: String) async throws -> CurlKit.HTTPResponse {
            try await client.execute(HTTPRequest(method: "GET", url: baseURL + path), tls: tls)
        }

        /// GET on the admin listener, with `Authorization: Bearer TOKEN` when a token is given.
        func admin(_ path: String, token: String? = nil) async throws -> CurlKit.HTTPResponse {
            let base = try #require(adminURL, "no admin listener in this test")
            return try await client.execute(HTTPRequest(method: "GET", url: base + path, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []))
        }
    }

    /// Starts the listener on port 0 (HTTPS when `tls` is set, trusting `caFile`), and the admin
    /// listener too when `admin` is set, runs `body`, and shuts them down gracefully.
    static func withListener(
        maxBodyBytes: Int = 64 * 1024, tls: ServerTLS? = nil, caFile: String? = nil, limits: ConnectionLimits = .default,
        admin: BridgeServer.Configuration.Admin? = nil, health: any HealthCheck = AlwaysHealthy(), status: (any StatusProvider)? = nil,
        events: ((SQLiteStateStore) -> BridgeServer.EventStream)? = nil, _ body: (Live) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/graph-bridge-listener-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteStateStore(path: directory + "/state.sqlite", logger: logger)
        let intake = NotificationIntake(
            directory: SubscriptionDirectory([SubscriptionEntry(name: "audit-feed", id: subscriptionID, resource: nil, clientState: "secretClientValue")]),
            store: store,
            doorbell: Doorbell(),
            logger: logger
        )
        let server = BridgeServer(
            configuration: .init(host: "127.0.0.1", port: 0, maxBodyBytes: maxBodyBytes, tls: tls, limits: limits, admin: admin),
            intake: intake,
            health: health,
            metrics: nil,
            status: status,
            events: events?(store),
            logger: logger
        )
        let port = OneShot<Int>()
        let adminPort = OneShot<Int>()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: try server.makeApplication { port.set($0) })]
        if admin != nil {
            services.append(.init(service: try server.makeAdminApplication { adminPort.set($0) }))
        }
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        let client = CurlClient()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let bound = await port.value()
            let adminURL = admin == nil ? nil : "http://127.0.0.1:\(await adminPort.value())"
            do {
                let scheme = tls == nil ? "http" : "https"
                try await body(Live(baseURL: "\(scheme)://127.0.0.1:\(bound)", store: store, client: client,
                                    tls: caFile.map { TLSOptions(caFile: $0) }, port: bound, adminURL: adminURL,
                                    stopListening: { await group.triggerGracefulShutdown() }))
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

    static func item(clientState: String = "secretClientValue", id: String = subscriptionID, etag: String = "1") -> String {
        ##"{"subscriptionId":"\##(id)","clientState":"\##(clientState)","changeType":"created","resource":"Users/1/Messages/\##(etag)","resourceData":{"@odata.etag":"\##(etag)"}}"##
    }

    static func body(_ items: String...) -> [UInt8] { Array(#"{"value":[\#(items.joined(separator: ","))]}"#.utf8) }

    @Test("the validation handshake echoes every shared token vector as text/plain", .enabled(if: handshakeVectors != nil, "needs ../shared/graph-vectors beside the checkout"))
    func handshake() async throws {
        let cases = try #require(handshakeVectors)
        try await Self.withListener { live in
            for endpoint in ["/notifications", "/lifecycle"] {
                for vector in cases {
                    let response = try await live.post("\(endpoint)?\(vector.query)", body: [], contentType: "text/plain; charset=utf-8")
                    #expect(response.status == 200, "\(vector.name)")
                    #expect(response.header("Content-Type")?.hasPrefix("text/plain") == true, "\(vector.name)")
                    #expect(response.bodyText == vector.expected, "\(vector.name)")
                }
            }
            #expect(try await live.store.eventCount() == 0)
        }
    }

    @Test("a good batch is journaled before the 202; bad input gets its status, journals nothing, and the listener keeps serving")
    func statuses() async throws {
        try await Self.withListener(maxBodyBytes: 4096) { live in
            #expect(try await live.post("/notifications", body: Self.body(Self.item(clientState: "forged"))).status == 202)
            #expect(try await live.post("/notifications", body: Self.body(Self.item(id: "00000000-0000-0000-0000-000000000000"))).status == 202)
            #expect(try await live.post("/notifications", body: Array("{not json".utf8)).status == 400)
            #expect(try await live.post("/lifecycle", body: Array(#"{"value": 3}"#.utf8)).status == 400)
            let oversize = Self.body(Self.item(etag: String(repeating: "x", count: 5000)))
            #expect(try await live.post("/notifications", body: oversize).status == 413)
            #expect(try await live.store.eventCount() == 0)

            let accepted = try await live.post("/notifications", body: Self.body(Self.item(etag: "a"), Self.item(etag: "b")))
            #expect(accepted.status == 202)
            #expect(try await live.store.eventCount() == 2)
            #expect(try await live.get("/healthz").status == 200)
        }
    }

    @Test("validationToken parsing decodes %20 and + alike, and ignores other parameters")
    func tokenParsing() {
        #expect(BridgeServer.validationToken(inQuery: "validationToken=a+b%20c%2Bd") == "a b c+d")
        #expect(BridgeServer.validationToken(inQuery: "x=1&validationToken=t") == "t")
        #expect(BridgeServer.validationToken(inQuery: "x=1") == nil)
        #expect(BridgeServer.validationToken(inQuery: nil) == nil)
    }
}

struct AlwaysHealthy: HealthCheck {
    func problems() async -> [String: String] { [:] }
}

struct HandshakeVector: Sendable {
    var name: String
    var query: String
    var expected: String
}

/// The cases of `../shared/graph-vectors/validation-handshake.json`, or nil when it is absent.
let handshakeVectors: [HandshakeVector]? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.deletingLastPathComponent().appendingPathComponent("shared/graph-vectors/validation-handshake.json").path
    guard let data = FileManager.default.contents(atPath: path), let json = try? JSONParser.parse(Array(data)),
        let cases = json["cases"]?.arrayValue
    else { return nil }
    return cases.compactMap { item in
        guard let name = item["name"]?.stringValue, let query = item["raw_query"]?.stringValue, let expected = item["expected_body"]?.stringValue else { return nil }
        return HandshakeVector(name: name, query: query, expected: expected)
    }
}()
