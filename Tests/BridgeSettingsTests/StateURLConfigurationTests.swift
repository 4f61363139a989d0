import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Testing

/// `state.url`: the PostgreSQL store, as `check` and `run` read it.
@Suite("bridge.yaml state.url")
struct StateURLConfigurationTests {
    /// The minimal configuration with `state:` holding `lines` (the first at line 11).
    static func yaml(_ lines: String...) -> String {
        ConfigurationTests.minimal + "state:\n" + lines.map { "  " + $0 + "\n" }.joined()
    }

    @Test("a full URL is read into its parts; the password comes from the environment, percent-decoded, and never shows in its description")
    func parsed() throws {
        let configuration = try ConfigurationTests.load(
            Self.yaml("url: postgres://bridge:${PG_PASSWORD}@db.example.net:6543/graph_bridge?sslmode=verify-full"),
            environment: ["PG_PASSWORD": "s3cret%2Fpass"]
        ).get()
        let url = try #require(configuration.state.url)
        #expect(url == PostgresLocation(host: "db.example.net", port: 6543, user: "bridge", password: "s3cret/pass", database: "graph_bridge", tls: .verifyFull))
        #expect(!url.description.contains("s3cret"))
        #expect(url.description == "postgres://bridge@db.example.net:6543/graph_bridge?sslmode=verify-full")
    }

    @Test("sslmode defaults to require; host= names a socket folder, which needs no TLS")
    func defaultsAndSocket() throws {
        let plain = try #require(try ConfigurationTests.load(Self.yaml("url: postgresql://bridge@db/graph")).get().state.url)
        #expect(plain.tls == .require && plain.port == 5432 && plain.password == nil)
        let socket = try #require(
            try ConfigurationTests.load(Self.yaml("url: postgres://bridge@localhost/graph?host=/run/postgresql&port=5433")).get().state.url)
        #expect(socket.socketPath == "/run/postgresql/.s.PGSQL.5433")
        #expect(socket.tls == .disable)
        let hostless = try #require(try ConfigurationTests.load(Self.yaml("url: postgres://bridge@/graph?host=/run/postgresql")).get().state.url)
        #expect(hostless.socketPath == "/run/postgresql/.s.PGSQL.5432")
    }

    @Test("a URL that cannot work is an error at its value", arguments: [
        ("url: mysql://bridge@db/graph", "state.url has the scheme mysql:, expected postgres: or postgresql:"),
        ("url: postgres://bridge@/graph", "state.url names no host (expected postgres://user:password@host:port/database)"),
        ("url: postgres://bridge@db", "state.url names no database (expected postgres://user:password@host:port/database)"),
        ("url: postgres://db/graph", "state.url names no user (expected postgres://user:password@host:port/database)"),
        ("url: postgres://bridge@db/graph?sslmode=prefer", "state.url has sslmode=prefer, expected one of disable, require, verify-full"),
        ("url: postgres://bridge@db/graph?application_name=x", "state.url has the parameter application_name, expected only sslmode, sslrootcert, host and port"),
        ("url: postgres://bridge@db/graph?sslmode=require&sslrootcert=/etc/ssl/ca.pem",
         "state.url has sslrootcert without sslmode=verify-full (the CA file is only used to verify the server)"),
        ("url: postgres://bridge@db/graph?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
         "state.url has sslrootcert=/nonexistent/ca.pem, which is not a readable file"),
        ("url: postgres://bridge@db/graph?sslmode=verify-full&sslrootcert=ca.pem", "state.url has sslrootcert=ca.pem, expected an absolute path"),
        ("url: postgres://bridge@localhost/graph?host=/run/pg&sslmode=require",
         "state.url connects over the Unix socket in /run/pg, where PostgreSQL offers no TLS: use sslmode=disable there"),
    ])
    func refused(line: String, message: String) {
        #expect(ConfigurationTests.errors(Self.yaml(line)) == ["bridge.yaml:11:8: " + message])
    }

    @Test("state.url and state.path together are refused at the URL")
    func notBoth() {
        #expect(
            ConfigurationTests.errors(Self.yaml("path: state.sqlite", "url: postgres://bridge@db/graph"))
                == ["bridge.yaml:12:8: state.url and state.path are alternatives (PostgreSQL or the SQLite file): give one of them"])
    }

    @Test("the read-only commands read state.url as run does, errors included")
    func stateOnly() {
        let (state, errors, _) = ConfigurationCheckTests.loadState(Self.yaml("url: postgres://bridge@db/graph?sslmode=disable"))
        #expect(errors == [])
        #expect(state?.url == PostgresLocation(host: "db", user: "bridge", password: nil, database: "graph"))
        let (_, refused, _) = ConfigurationCheckTests.loadState(Self.yaml("url: postgres://bridge@db/graph?sslmode=off"))
        #expect(refused == ["bridge.yaml:11:8: state.url has sslmode=off, expected one of disable, require, verify-full"])
    }
}
