import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Testing
import TestSupport

@Suite("bridge.yaml loading")
struct ConfigurationTests {
    static let registry = SinkRegistry([RecordingSink.self])

    /// Loads `yaml` as `bridge.yaml` in a temp folder; returns the configuration or the error lines.
    static func load(_ yaml: String, environment: [String: String] = [:]) -> Result<BridgeConfiguration, ConfigErrors> {
        let directory = TemporaryDirectory()
        let path = directory.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8))
        do {
            return .success(try BridgeConfiguration.load(path: path, registry: registry, environment: environment))
        } catch {
            return .failure(error)
        }
    }

    /// The error lines with the temp folder replaced by `bridge.yaml`.
    static func errors(_ yaml: String, environment: [String: String] = [:]) -> [String] {
        guard case .failure(let errors) = load(yaml, environment: environment) else { return [] }
        return errors.errors.map { error in
            var error = error
            error.file = "bridge.yaml"
            return error.description
        }
    }

    static let minimal = """
        subscriptions:
          - name: feed
            manage: false
            id: 11111111-2222-3333-4444-555555555555
            clientState: s3cret
        sinks:
          rec: { type: recording }
        routes:
          - to: [rec]

        """

    @Test("a minimal receive-only configuration loads with defaults")
    func minimal() throws {
        let configuration = try Self.load(Self.minimal).get()
        #expect(configuration.server.host == "0.0.0.0")
        #expect(configuration.server.port == 8080)
        #expect(configuration.server.maxBodyBytes == 1 << 20)
        #expect(configuration.state.path.hasSuffix("/bridge-state.sqlite"))
        #expect(configuration.retry == .default)
        #expect(configuration.receiveOnlyEntries == [SubscriptionEntry(name: "feed", id: "11111111-2222-3333-4444-555555555555", resource: nil, clientState: "s3cret")])
        #expect(configuration.sinks.map(\.name) == ["rec"])
        #expect(configuration.sinks.first?.concurrency == RecordingSink.defaultConcurrency)
    }

    @Test("every section of SPEC section 4 parses")
    func allSections() throws {
        let yaml = """
            graph:
              tenant: contoso.onmicrosoft.com
              clientId: 11111111-2222-3333-4444-555555555555
              clientSecret: ${SECRET}
              cloud: usgov
              authorityUrl: https://login.example.test
              baseUrl: http://127.0.0.1:9/v1.0
            server:
              listen: 127.0.0.1:9090
              publicUrl: https://bridge.example.com/
              maxBodyBytes: 256KiB
            state:
              path: data/state.sqlite
              retention: 2h
            subscriptions:
              - name: inbox
                resource: users/alice@contoso.com/mailFolders('Inbox')/messages
                changeTypes: [created, updated]
                expiration: 2d
                fetch: [subject, from]
              - name: rich
                resource: teams/getAllMessages
                changeTypes: [created]
                includeResourceData: true
                encryption: { certificate: enc.pem, key: enc.key, id: enc-2026 }
              - name: audit-feed
                manage: false
                id: 7f1c0000-0000-0000-0000-000000000000
                clientState: ${AUDIT:-fallback}
            sinks:
              rec:
                type: recording
                label: hello
                concurrency: 4
                retry: { maxAge: 1h }
            routes:
              - match: { subscription: inbox, changeType: [created, updated], data.subject: "*invoice*" }
                to: [rec]
                continue: true
              - match: { lifecycleEvent: missed, resource: { regex: "Users/.*" }, tenantId: { not: other } }
                to: [rec]
              - to: [rec]
            retry:
              initialBackoff: 2s
              maxBackoff: 10m
              maxAge: 12h

            """
        let configuration = try Self.load(yaml, environment: ["SECRET": "shh"]).get()
        #expect(configuration.graph?.clientSecret == "shh")
        #expect(configuration.graph?.cloud == .usgov)
        #expect(configuration.server.port == 9090)
        #expect(configuration.server.publicUrl == "https://bridge.example.com")
        #expect(configuration.server.maxBodyBytes == 256 * 1024)
        #expect(configuration.state.path.hasSuffix("/data/state.sqlite"))
        #expect(configuration.state.retention == .seconds(7200))
        #expect(configuration.subscriptions.map(\.name) == ["inbox", "rich", "audit-feed"])
        #expect(configuration.subscriptions[0].expiration == .seconds(2 * 86_400))
        #expect(configuration.subscriptions[0].changeTypes == [.created, .updated])
        #expect(configuration.subscriptions[1].encryption?.id == "enc-2026")
        #expect(configuration.subscriptions[2].clientState == "fallback")
        #expect(configuration.retry == RetryPolicy(initialBackoff: .seconds(2), maxBackoff: .seconds(600), maxAge: .seconds(43_200)))
        let sink = try #require(configuration.sinks.first)
        #expect(sink.concurrency == 4)
        #expect(sink.retry == RetryPolicy(initialBackoff: .seconds(2), maxBackoff: .seconds(600), maxAge: .seconds(3600)))
        #expect(configuration.router.routes.count == 3)
        #expect(configuration.router.routes[0].continue)
    }

    @Test("an unknown key says where and what was meant")
    func unknownKey() {
        #expect(Self.errors(Self.minimal + "server:\n  listn: 127.0.0.1:0\n") == [
            "bridge.yaml:11:3: unknown key 'listn' in server (did you mean 'listen'?)"
        ])
        #expect(Self.errors("retyr: {}\n" + Self.minimal) == ["bridge.yaml:1:1: unknown key 'retyr' (did you mean 'retry'?)"])
    }

    @Test("an unknown key inside a sink's own block is reported by the plugin's keys")
    func unknownSinkKey() {
        let yaml = Self.minimal.replacingOccurrences(of: "rec: { type: recording }", with: "rec: { type: recording, lable: x }")
        #expect(Self.errors(yaml) == ["bridge.yaml:7:27: unknown key 'lable' in sinks.rec (did you mean 'label'?)"])
    }

    @Test("a wrong type points at the value")
    func wrongType() {
        let errors = Self.errors(Self.minimal + "server:\n  maxBodyBytes: lots\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:11:17: ") == true)
        let manageErrors = Self.errors(Self.minimal.replacingOccurrences(of: "manage: false", with: "manage: nope"))
        #expect(manageErrors.first?.hasPrefix("bridge.yaml:3:13: ") == true)
    }

    @Test("server.tls files must exist: the missing one is named at its line")
    func tlsFiles() {
        let errors = Self.errors(Self.minimal + "server:\n  tls:\n    certificate: /nonexistent/server.pem\n    key: /nonexistent/server.key\n")
        #expect(errors == [
            "bridge.yaml:12:18: /nonexistent/server.pem does not exist or is not a file",
        ])
        let missingKey = Self.errors(Self.minimal + "server:\n  tls: { certificate: /etc/hostname }\n")
        #expect(missingKey.count == 1)
        #expect(missingKey.first?.contains("key") == true, "\(missingKey)")
    }

    @Test("a missing environment variable names the variable and its line")
    func missingVariable() {
        let yaml = Self.minimal.replacingOccurrences(of: "clientState: s3cret", with: "clientState: ${FEED_STATE}")
        #expect(Self.errors(yaml) == [
            "bridge.yaml:5:18: environment variable FEED_STATE is not set (set it, or write ${FEED_STATE:-default})"
        ])
        #expect(Self.errors(yaml, environment: ["FEED_STATE": "x"]).isEmpty)
    }

    @Test("a route to an undefined sink points at the name")
    func undefinedSink() {
        let yaml = Self.minimal.replacingOccurrences(of: "  - to: [rec]", with: "  - to: [rec, chat]")
        #expect(Self.errors(yaml) == ["bridge.yaml:9:15: route sends to undefined sink 'chat' (defined sinks: rec)"])
    }

    @Test("an unknown sink type names the known types")
    func unknownType() {
        let yaml = Self.minimal.replacingOccurrences(of: "type: recording", with: "type: slack")
        #expect(Self.errors(yaml) == ["bridge.yaml:7:16: unknown sink type 'slack' for sink 'rec' (known types: recording)"])
    }

    @Test("bad YAML is reported where libyaml found it")
    func badYAML() {
        let errors = Self.errors("sinks:\n  rec: { type: recording\nroutes: []\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:3:") == true)
    }

    @Test("several independent errors are all reported, in file order")
    func severalErrors() {
        let yaml = """
            subscriptions:
              - name: feed
                manage: false
                id: 11111111-2222-3333-4444-555555555555
            sinks:
              rec: { type: recording }
              bad: { type: nope }
            routes:
              - to: [missing]

            """
        let errors = Self.errors(yaml)
        #expect(errors.count == 3)
        #expect(errors[0].hasPrefix("bridge.yaml:2:5: receive-only subscription 'feed' needs clientState"))
        #expect(errors[1] == "bridge.yaml:7:16: unknown sink type 'nope' for sink 'bad' (known types: recording)")
        #expect(errors[2] == "bridge.yaml:9:10: route sends to undefined sink 'missing' (defined sinks: bad, rec)")
    }

    @Test("a bad regex in a matcher is a config error at the value")
    func badRegex() {
        let yaml = Self.minimal.replacingOccurrences(of: "  - to: [rec]", with: "  - match: { resource: { regex: \"(unclosed\" } }\n    to: [rec]")
        let errors = Self.errors(yaml)
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:9:24: invalid regular expression '(unclosed'") == true)
    }

    @Test("managed subscriptions need graph: and server.publicUrl")
    func managedNeedsGraph() {
        let yaml = """
            subscriptions:
              - name: inbox
                resource: me/messages
                changeTypes: [created]

            """
        #expect(Self.errors(yaml) == [
            "bridge.yaml:2:5: subscription 'inbox' is managed by the bridge, which needs a graph: section (or set manage: false)",
            "bridge.yaml:2:5: subscription 'inbox' is managed by the bridge, which needs server.publicUrl so Graph can reach it",
        ])
    }
}
