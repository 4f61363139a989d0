import BridgeConfig
import BridgeCore
import BridgeSettings
import Testing

/// `server:`'s listener keys: defaults, values, and each refusal at its own line and column.
@Suite("server settings")
struct ServerSettingsTests {
    static func yaml(_ server: String) -> String { "server:\n" + server + "\n" + ConfigurationTests.minimal }

    @Test("defaults: 30 s timeouts, 1024 connections, the admin listener on 127.0.0.1:9464 without a token")
    func defaults() throws {
        let server = try ConfigurationTests.load(ConfigurationTests.minimal).get().server
        #expect(server.idleTimeout == .seconds(30) && server.requestTimeout == .seconds(30) && server.maxConnections == 1024)
        #expect(server.admin.host == "127.0.0.1" && server.admin.port == 9464 && server.admin.token == nil)
    }

    @Test("the keys as written, a token from the environment")
    func values() throws {
        let server = try ConfigurationTests.load(
            Self.yaml(
                """
                  idleTimeout: 500ms
                  requestTimeout: 2s
                  maxConnections: 10
                  admin:
                    listen: 10.0.0.5:0
                    token: ${ADMIN_TOKEN}
                """), environment: ["ADMIN_TOKEN": "t"]
        ).get().server
        #expect(server.idleTimeout == .milliseconds(500) && server.requestTimeout == .seconds(2) && server.maxConnections == 10)
        #expect(server.admin.host == "10.0.0.5" && server.admin.port == 0 && server.admin.token == "t")
    }

    @Test("an admin address off loopback needs a token, reported at its listen value; loopback ones do not")
    func tokenRequired() throws {
        for host in ["0.0.0.0", "10.0.0.5", "[::]", "bridge.example.com"] {
            let errors = ConfigurationTests.errors(Self.yaml("  admin:\n    listen: \"\(host):9464\""))
            #expect(errors.count == 1 && errors.first?.hasPrefix("bridge.yaml:3:13: admin.listen ") == true, "\(host): \(errors)")
            #expect(errors.first?.contains("set admin.token") == true)
        }
        for host in ["127.0.0.1", "127.1.2.3", "[::1]", "localhost"] {
            #expect(ConfigurationTests.errors(Self.yaml("  admin:\n    listen: \"\(host):9464\"")).isEmpty, "\(host)")
        }
        #expect(
            ConfigurationTests.errors(Self.yaml("  admin:\n    listen: 127.0.0.1:9464\n    token: \"\"")) == [
                "bridge.yaml:4:12: admin.token must not be empty (or leave the key out on a loopback address)"
            ])
    }

    @Test("zero timeouts, a cap below 1, and the admin listener on the public address are refused where they are written")
    func refusals() {
        #expect(ConfigurationTests.errors(Self.yaml("  idleTimeout: 0s")) == ["bridge.yaml:2:16: server.idleTimeout must be more than 0"])
        #expect(ConfigurationTests.errors(Self.yaml("  requestTimeout: 0ms")) == ["bridge.yaml:2:19: server.requestTimeout must be more than 0"])
        #expect(ConfigurationTests.errors(Self.yaml("  maxConnections: 0")) == ["bridge.yaml:2:19: server.maxConnections must be at least 1"])
        #expect(ConfigurationTests.errors(Self.yaml("  idleTimeout: 30")).first?.hasPrefix("bridge.yaml:2:16: expected a duration") == true)
        let same = ConfigurationTests.errors(Self.yaml("  listen: 0.0.0.0:9464"))
        #expect(
            same.count == 1
                && same.first?.hasPrefix("bridge.yaml:2:11: admin.listen (default 127.0.0.1:9464) must differ from server.listen") == true, "\(same)")
        #expect(ConfigurationTests.errors(Self.yaml("  listen: 127.0.0.1:0\n  admin: { listen: 127.0.0.1:0 }")).isEmpty, "port 0 twice is fine")
        #expect(ConfigurationTests.errors(Self.yaml("  admin: { listn: 127.0.0.1:1 }")).first?.contains("did you mean 'listen'") == true)
    }
}
