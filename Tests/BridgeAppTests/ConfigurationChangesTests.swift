import BridgeConfig
import Foundation
import Testing

@testable import BridgeApp

/// What a reload reports as changed, from two YAML trees: no I/O.
@Suite("configuration changes")
struct ConfigurationChangesTests {
    static let base = """
        server:
          listen: 127.0.0.1:8080
          publicUrl: https://bridge.example.com
          admin: { listen: 127.0.0.1:9464 }
        state: { path: state.sqlite }
        subscriptions:
          - { name: inbox, resource: "users/a/messages", changeTypes: [created] }
          - { name: feed, manage: false, id: abc, clientState: x }
        sinks:
          audit: { type: file, path: audit.jsonl }
          chat: { type: webhook, url: "https://chat.example.com/hook" }
        routes:
          - to: [audit, chat]
        retry: { initialBackoff: 1s }
        """

    static func root(_ text: String) throws -> ConfigNode {
        try ConfigDocument.parse(text, file: "bridge.yaml", directory: "/tmp").root
    }

    @Test("the same content, differently formatted, changes nothing")
    func sameContent() throws {
        let reformatted = Self.base
            .replacingOccurrences(of: "audit: { type: file, path: audit.jsonl }", with: "audit:\n    type: file   # a comment\n    path: audit.jsonl")
        let changes = ConfigurationChanges(from: try Self.root(Self.base), to: try Self.root(reformatted))
        #expect(changes.isEmpty, "\(changes.summary)")
        #expect(ConfigurationChanges.restartOnlyKeys(started: try Self.root(Self.base), new: try Self.root(reformatted)).isEmpty)
    }

    @Test("sinks and subscriptions added, changed and removed are named; routes, retry and publicUrl are flagged")
    func namedChanges() throws {
        let changed = Self.base
            .replacingOccurrences(of: "  chat: { type: webhook, url: \"https://chat.example.com/hook\" }", with: "  console: { type: stdout }")
            .replacingOccurrences(of: "path: audit.jsonl", with: "path: audit2.jsonl")
            .replacingOccurrences(of: "changeTypes: [created]", with: "changeTypes: [created, updated]")
            .replacingOccurrences(
                of: "  - { name: feed, manage: false, id: abc, clientState: x }", with: "  - { name: sent, resource: \"users/a/sent\" }"
            )
            .replacingOccurrences(of: "to: [audit, chat]", with: "to: [audit, console]")
            .replacingOccurrences(of: "initialBackoff: 1s", with: "initialBackoff: 2s")
            .replacingOccurrences(of: "https://bridge.example.com", with: "https://other.example.com")
        let changes = ConfigurationChanges(from: try Self.root(Self.base), to: try Self.root(changed))
        #expect(changes.sinksAdded == ["console"] && changes.sinksChanged == ["audit"] && changes.sinksRemoved == ["chat"])
        #expect(changes.subscriptionsAdded == ["sent"] && changes.subscriptionsChanged == ["inbox"] && changes.subscriptionsRemoved == ["feed"])
        #expect(changes.routesChanged && changes.retryChanged && changes.publicURLChanged && !changes.graphChanged)
        #expect(changes.summary.first.map { "\($0.key)=\($0.value)" } == "bridge.sinks_added=console")
        #expect(ConfigurationChanges.restartOnlyKeys(started: try Self.root(Self.base), new: try Self.root(changed)).isEmpty, "publicUrl reloads")
    }

    @Test("server keys but publicUrl, and state keys, need a restart and are named one by one")
    func restartOnly() throws {
        let changed = Self.base
            .replacingOccurrences(of: "listen: 127.0.0.1:8080", with: "listen: 0.0.0.0:8080\n  maxConnections: 10")
            .replacingOccurrences(of: "admin: { listen: 127.0.0.1:9464 }", with: "admin: { listen: 127.0.0.1:9465, token: t }")
            .replacingOccurrences(of: "state: { path: state.sqlite }", with: "state: { path: other.sqlite }")
        let keys = ConfigurationChanges.restartOnlyKeys(started: try Self.root(Self.base), new: try Self.root(changed))
        #expect(keys == ["server.listen", "server.admin.listen", "server.admin.token", "server.maxConnections", "state.path"])
        #expect(ConfigurationChanges(from: try Self.root(Self.base), to: try Self.root(changed)).isEmpty)
    }
}
