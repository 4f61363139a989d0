import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Testing
import TestSupport

/// What `check` (and `run`) refuse beyond the schema: match keys that name no field of the event,
/// one error for a wrong sink type; and the `state:`-only reading of the read-only commands.
@Suite("bridge.yaml checks")
struct ConfigurationCheckTests {
    static let fields = "id, receivedAt, subscription, changeType, lifecycleEvent, resource, resourceData, tenantId, data, resync"

    @Test("a match key whose first segment is no field of the event is an error at the key, with a suggestion")
    func matchKeyTypos() {
        let yaml = """
            subscriptions:
              - name: feed
                manage: false
                id: 11111111-2222-3333-4444-555555555555
                clientState: s3cret
            sinks:
              rec: { type: recording }
            routes:
              - match: { changeTyp: created, data.subjet: "x*", resourceData.@odata.type: y }
                to: [rec]
              - match:
                  subscription.nme: feed
                  subject: hi
                  changeType.x: y
                  Resource: r
                to: [rec]
              - match: { subscription: feed, subscription.id: x, tenantId: t, resync: "true", lifecycleEvent: missed, id: i, receivedAt: r }
                to: [rec]

            """
        #expect(
            ConfigurationTests.errors(yaml) == [
                "bridge.yaml:9:14: 'changeTyp' is not a path into the event: it has no field 'changeTyp' (did you mean 'changeType'?); the event's fields are \(Self.fields)",
                "bridge.yaml:12:7: 'subscription.nme' is not a path into the event: subscription has no field 'nme' (did you mean 'subscription.name'?); its fields are name, id, resource",
                "bridge.yaml:13:7: 'subject' is not a path into the event: it has no field 'subject' (did you mean 'data.subject'?); the event's fields are \(Self.fields)",
                "bridge.yaml:14:7: 'changeType.x' is not a path into the event: changeType is a single value, not an object",
                "bridge.yaml:15:7: 'Resource' is not a path into the event: it has no field 'Resource' (did you mean 'resource'?); the event's fields are \(Self.fields)",
            ])
    }

    @Test("paths under data. and resourceData. are free; every field of the event is accepted")
    func freePaths() throws {
        let yaml = ConfigurationTests.minimal.replacingOccurrences(
            of: "  - to: [rec]",
            with: """
                  - match: { data.anything.at.all: x, resourceData.@odata.type: y, data: z, subscription.resource: r }
                    to: [rec]
                  - to: [rec]
                """)
        let configuration = try ConfigurationTests.load(yaml).get()
        #expect(configuration.router.routes.count == 2)
    }

    @Test("a wrong sink type is the only error of its sink: its other keys are not reported as unknown")
    func wrongSinkTypeOnly() {
        let yaml = ConfigurationTests.minimal.replacingOccurrences(
            of: "rec: { type: recording }", with: "rec: { type: stdot, format: text, path: x.jsonl }")
        #expect(ConfigurationTests.errors(yaml) == ["bridge.yaml:7:16: unknown sink type 'stdot' for sink 'rec' (known types: recording)"])
    }

    /// Writes `yaml` as bridge.yaml and reads only its `state:`; the error lines with the folder replaced.
    static func loadState(_ yaml: String, environment: [String: String] = [:]) -> (StateSettings?, [String], String) {
        let directory = TemporaryDirectory()
        let path = directory.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8))
        do {
            return (try BridgeConfiguration.loadState(path: path, environment: environment), [], directory.path)
        } catch {
            return (nil, error.errors.map { $0.description.replacingOccurrences(of: path, with: "bridge.yaml") }, directory.path)
        }
    }

    static let withSecrets = """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: ${GRAPH_CLIENT_SECRET}
        state:
          path: data/state.sqlite
          retention: 2h
        sinks:
          mail: { type: smtp, url: "smtp://x", password: "${SMTP_PASSWORD}" }
          typo: { tpye: file }

        """

    @Test("reading only state: ignores unset variables and errors elsewhere in the file")
    func stateOnly() throws {
        #expect(!ConfigurationTests.errors(Self.withSecrets).isEmpty, "the full load must fail on this file")
        let (state, errors, directory) = Self.loadState(Self.withSecrets)
        #expect(errors == [])
        #expect(state?.path == directory + "/data/state.sqlite")
        #expect(state?.retention == .seconds(7200))

        let (defaulted, none, folder) = Self.loadState("sinks: { a: { type: nope, x: '${UNSET}' } }\n")
        #expect(none == [])
        #expect(defaulted?.path == folder + "/bridge-state.sqlite")
    }

    @Test("an error inside state: still stops the read-only commands, at its position")
    func stateErrors() {
        let unset = Self.withSecrets.replacingOccurrences(of: "path: data/state.sqlite", with: "path: ${STATE_DIR}/state.sqlite")
        let (_, errors, _) = Self.loadState(unset)
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:6:9: ") == true, "\(errors)")
        #expect(errors.first?.contains("STATE_DIR") == true, "\(errors)")

        let typo = Self.withSecrets.replacingOccurrences(of: "retention: 2h", with: "retension: 2h")
        #expect(Self.loadState(typo).1 == ["bridge.yaml:7:3: unknown key 'retension' in state (did you mean 'retention'?)"])

        #expect(Self.loadState("state: [a]\n").1 == ["bridge.yaml:1:8: expected a mapping, found a list in state"])
    }
}
