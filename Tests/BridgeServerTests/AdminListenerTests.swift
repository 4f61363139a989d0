import BridgeCore
import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import Testing

/// The two listeners: only what Graph needs on the public one; the status page, metrics, health
/// and readiness on the admin one, behind a Bearer token when one is set.
@Suite("admin listener")
struct AdminListenerTests {
    static let admin = BridgeServer.Configuration.Admin(host: "127.0.0.1", port: 0)

    @Test("the public listener serves notifications and a one-word /healthz; everything else there is 404")
    func publicSurface() async throws {
        try await ListenerTests.withListener(admin: Self.admin, status: FixedStatus()) { live in
            #expect(try await live.post("/notifications", body: ListenerTests.body(ListenerTests.item())).status == 202)
            #expect(try await live.post("/lifecycle?validationToken=t").status == 200)
            let health = try await live.get("/healthz")
            #expect(health.status == 200 && health.bodyText == "ok\n")
            for path in ["/", "/status.json", "/metrics", "/readyz", "/events", "/nope"] {
                #expect(try await live.get(path).status == 404, "\(path) on the public listener")
            }
            // The same paths are there on the admin listener.
            #expect(try await live.admin("/").status == 200)
            #expect(try await live.admin("/status.json").bodyText.contains("\"marker\""))
        }
    }

    @Test("the public /healthz says one word when something fails; the admin /healthz names the part in JSON")
    func health() async throws {
        let failing = ScriptedHealth(problems: ["store": "disk I/O error at /var/lib/bridge/state.sqlite"], ready: [:])
        try await ListenerTests.withListener(admin: Self.admin, health: failing) { live in
            let publicHealth = try await live.get("/healthz")
            #expect(publicHealth.status == 503)
            #expect(publicHealth.bodyText == "unavailable\n", "no detail on the public listener: \(publicHealth.bodyText)")

            let adminHealth = try await live.admin("/healthz")
            #expect(adminHealth.status == 503)
            #expect(adminHealth.header("Content-Type") == "application/json")
            let object = try #require(try JSONParser.parse(adminHealth.body).objectValue)
            #expect(object["status"]?.stringValue == "unhealthy")
            #expect(object["problems"]?["store"]?.stringValue == "disk I/O error at /var/lib/bridge/state.sqlite")
        }
        try await ListenerTests.withListener(admin: Self.admin) { live in
            let adminHealth = try await live.admin("/healthz")
            #expect(adminHealth.status == 200 && adminHealth.bodyText == #"{"status":"ok"}"#)
        }
    }

    @Test("/readyz is 200 when nothing is missing, else 503 with a JSON body saying why")
    func readiness() async throws {
        let unready = ScriptedHealth(problems: [:], ready: ["subscriptions": "inbox: no subscription at Graph yet"])
        try await ListenerTests.withListener(admin: Self.admin, health: unready) { live in
            let response = try await live.admin("/readyz")
            #expect(response.status == 503)
            let object = try #require(try JSONParser.parse(response.body).objectValue)
            #expect(object["status"]?.stringValue == "not ready")
            #expect(object["problems"]?["subscriptions"]?.stringValue == "inbox: no subscription at Graph yet")
            // Not ready is not unhealthy: the bridge takes notifications meanwhile.
            #expect(try await live.admin("/healthz").status == 200)
            #expect(try await live.get("/healthz").status == 200)
        }
        try await ListenerTests.withListener(admin: Self.admin) { live in
            let response = try await live.admin("/readyz")
            #expect(response.status == 200 && response.bodyText == #"{"status":"ready"}"#)
        }
    }

    @Test("with server.admin.token every admin path needs the Bearer token; without it, 401 with WWW-Authenticate: Bearer")
    func token() async throws {
        let secret = "s3cr3t-admin-token"
        try await ListenerTests.withListener(admin: .init(host: "127.0.0.1", port: 0, token: secret), status: FixedStatus()) { live in
            for path in ["/", "/status.json", "/metrics", "/healthz", "/readyz", "/nope"] {
                for presented in [nil, "wrong", secret + "x", String(secret.dropLast())] {
                    let refused = try await live.admin(path, token: presented)
                    #expect(refused.status == 401, "\(path) with \(presented ?? "no token")")
                    #expect(refused.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
                    #expect(!refused.bodyText.contains(secret))
                }
            }
            #expect(try await live.admin("/status.json", token: secret).bodyText.contains("\"marker\""))
            #expect(try await live.admin("/healthz", token: secret).status == 200)
            #expect(try await live.admin("/readyz", token: secret).status == 200)
            #expect(try await live.admin("/", token: secret).status == 200)
            #expect(try await live.admin("/nope", token: secret).status == 404)
            // Another scheme, or the token with a different case, is refused too.
            let basic = try await live.client.execute(HTTPRequest(url: live.adminURL! + "/healthz", headers: [("Authorization", "Basic \(secret)")]))
            #expect(basic.status == 401)
            #expect(try await live.admin("/healthz", token: secret.uppercased()).status == 401)
            // The public listener takes no token and needs none.
            #expect(try await live.get("/healthz").status == 200)
        }
    }

    @Test("the handshake answer says nosniff; a validation token over 1 KiB after decoding is 400")
    func handshakeLimits() async throws {
        try await ListenerTests.withListener { live in
            let answered = try await live.post("/notifications?validationToken=abc")
            #expect(answered.status == 200 && answered.header("X-Content-Type-Options") == "nosniff")
            let atLimit = String(repeating: "a", count: 1024)
            let longest = try await live.post("/notifications?validationToken=\(atLimit)")
            #expect(longest.status == 200 && longest.bodyText == atLimit)
            // 3 KiB as written, 1 KiB once decoded: still allowed.
            let encoded = try await live.post("/lifecycle?validationToken=" + String(repeating: "%41", count: 1024))
            #expect(encoded.status == 200 && encoded.bodyText == String(repeating: "A", count: 1024))
            for endpoint in ["/notifications", "/lifecycle"] {
                let tooLong = try await live.post("\(endpoint)?validationToken=\(atLimit)b")
                #expect(tooLong.status == 400, "\(endpoint)")
                #expect(!tooLong.bodyText.contains(atLimit), "the refused token is not echoed")
                #expect(tooLong.header("X-Content-Type-Options") == "nosniff")
            }
            #expect(try await live.store.eventCount() == 0)
        }
    }
}

/// A health check with fixed answers, for the endpoints' shapes (the real one is the bridge's
/// `StoreHealth`, tested through the binary in EndToEndTests).
struct ScriptedHealth: HealthCheck {
    let failing: [String: String]
    let missing: [String: String]

    init(problems: [String: String], ready missing: [String: String]) {
        failing = problems
        self.missing = missing
    }

    func problems() async -> [String: String] { failing }
    func readinessProblems() async -> [String: String] { failing.merging(missing) { first, _ in first } }
}

struct FixedStatus: StatusProvider {
    func status() async -> JSONValue { .object(["marker": .bool(true)]) }
}
