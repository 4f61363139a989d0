import Foundation
import TestSupport
import Testing

/// `check` refuses exactly what `run` refuses, each with `FILE:LINE:COL`: one table of
/// configurations, each run through both commands of the real binary.
@Suite("check and run agree", .machine(.processes))
struct CheckRunAgreementTests {
    /// A configuration that must be refused: the YAML, and the line (1-based) and message part
    /// both commands must report.
    struct Refused: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var line: Int
        var message: String
        /// Files next to bridge.yaml (name → contents).
        var files: [String: String] = [:]
        /// Whether a real key pair is made as enc.pem and enc.key.
        var encryptionKeys = false

        var testDescription: String { name }
    }

    /// Lines 1-9 of every case: a managed-capable bridge on free loopback ports.
    static let head = """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: not-used-before-start
        server:
          listen: 127.0.0.1:0
          publicUrl: https://bridge.example.com
          admin: { listen: 127.0.0.1:0 }
        state: { path: state.sqlite }

        """

    static let receiveOnly = """
        server:
          listen: 127.0.0.1:0
          admin: { listen: 127.0.0.1:0 }
        state: { path: state.sqlite }

        """

    static let tail = """
        sinks:
          out: { type: stdout }
        routes:
          - to: [out]

        """

    static let inbox = """
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/messages
            changeTypes: [created]

        """

    static let cases: [Refused] = [
        Refused(name: "an unknown key", yaml: head + inbox + tail + "colour: blue\n", line: 18, message: "unknown key 'colour'"),
        Refused(
            name: "a route to a sink that does not exist", yaml: head + inbox + "sinks:\n  out: { type: stdout }\nroutes:\n  - to: [elsewhere]\n",
            line: 17, message: "elsewhere"),
        Refused(name: "a sink type nobody knows", yaml: head + inbox + "sinks:\n  out: { type: carrier-pigeon }\nroutes:\n  - to: [out]\n", line: 15, message: "carrier-pigeon"),
        Refused(
            name: "a receive-only subscription with encryption and no graph:",
            yaml: receiveOnly + """
                subscriptions:
                  - name: feed
                    manage: false
                    id: 7f105c7d-2dc5-4530-97cd-4e7ae6534c07
                    clientState: secretClientValue
                    encryption: { certificate: enc.pem, key: enc.key, id: enc-1 }

                """ + tail,
            line: 6, message: "need a graph: section", encryptionKeys: true),
        Refused(
            name: "fetch: on a receive-only subscription without graph:",
            yaml: receiveOnly + """
                subscriptions:
                  - name: feed
                    manage: false
                    id: 7f105c7d-2dc5-4530-97cd-4e7ae6534c07
                    clientState: secretClientValue
                    fetch: [subject]

                """ + tail,
            line: 6, message: "fetch: reads the changed items from Graph"),
        Refused(
            name: "managed subscriptions without publicUrl",
            yaml: head.replacingOccurrences(of: "  publicUrl: https://bridge.example.com\n", with: "") + inbox + tail, line: 10, message: "publicUrl"),
        Refused(
            name: "publicUrl with http:// off this machine",
            yaml: head.replacingOccurrences(of: "https://bridge.example.com", with: "http://bridge.example.com") + inbox + tail, line: 7,
            message: "http://"),
        Refused(
            name: "the admin listener off loopback without a token",
            yaml: head.replacingOccurrences(of: "admin: { listen: 127.0.0.1:0 }", with: "admin: { listen: 0.0.0.0:0 }") + inbox + tail, line: 8,
            message: "token"),
        Refused(
            name: "a state URL that is not PostgreSQL's",
            yaml: head.replacingOccurrences(of: "state: { path: state.sqlite }", with: "state: { url: mysql://localhost/bridge }") + inbox + tail,
            line: 9, message: "postgres"),
        Refused(
            name: "a file sink in a folder that does not exist",
            yaml: head + inbox + "sinks:\n  out: { type: file, path: no-such-folder/events.jsonl }\nroutes:\n  - to: [out]\n", line: 15,
            message: "no-such-folder"),
        Refused(
            name: "a webhook body template that does not parse",
            yaml: head + inbox + "sinks:\n  chat:\n    type: webhook\n    url: https://chat.example.com/hook\n    body: '{\"text\": \"{{#data}}\"}'\nroutes:\n  - to: [chat]\n",
            line: 18, message: "data"),
        Refused(
            name: "server.tls with files that are not PEM",
            yaml: head.replacingOccurrences(of: "  publicUrl: https://bridge.example.com\n", with: "  publicUrl: https://bridge.example.com\n  tls: { certificate: server.pem, key: server.key }\n")
                + inbox + tail,
            line: 8, message: "tls", files: ["server.pem": "not a certificate\n", "server.key": "not a key\n"]),
        Refused(
            name: "graph.certificate with files that are not PEM",
            yaml: head.replacingOccurrences(of: "  clientSecret: not-used-before-start\n", with: "  certificate: { certificate: app.pem, key: app.key }\n") + inbox + tail,
            line: 4, message: "certificate", files: ["app.pem": "not a certificate\n", "app.key": "not a key\n"]),
        Refused(
            name: "an unset environment variable", yaml: head.replacingOccurrences(of: "not-used-before-start", with: "${GRAPH_BRIDGE_TEST_UNSET_SECRET}") + inbox + tail,
            line: 4, message: "GRAPH_BRIDGE_TEST_UNSET_SECRET"),
    ]

    @Test("each configuration is refused by check and by run, at the same FILE:LINE:COL", arguments: cases)
    func bothRefuse(_ refused: Refused) async throws {
        let directory = TemporaryDirectory(prefix: "graph-bridge-agree")
        directory.write("bridge.yaml", refused.yaml)
        if refused.encryptionKeys {
            try await runCommand([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.file("enc.key"),
                "-out", directory.file("enc.pem"), "-days", "1", "-subj", "/CN=graph-bridge-encryption",
            ])
            _ = chmod(directory.file("enc.key"), 0o600)
        }
        for (name, contents) in refused.files {
            directory.write(name, contents)
            _ = chmod(directory.file(name), 0o600)
        }
        var positions: [String: String] = [:]
        for command in ["check", "run"] {
            // `run` must refuse before it starts anything; one that started is killed (status 9).
            let (status, _, stderr) = try await runToCompletion(
                [command, "--config", "bridge.yaml"], directory: directory.path, removing: ["GRAPH_BRIDGE_TEST_UNSET_SECRET"], killAfter: .seconds(30))
            #expect(status == 1, "\(command) exited \(status): \(stderr)")
            let pattern = #"bridge\.yaml:(\d+):(\d+): "#
            let match = stderr.firstMatch(of: try Regex(pattern))
            let position = match.map { String(stderr[$0.range]) }
            #expect(position != nil, "\(command) gave no FILE:LINE:COL: \(stderr)")
            #expect(position?.hasPrefix("bridge.yaml:\(refused.line):") == true, "\(command) names line \(refused.line): \(stderr)")
            #expect(stderr.localizedCaseInsensitiveContains(refused.message), "\(command) says '\(refused.message)': \(stderr)")
            positions[command] = position
        }
        #expect(positions["check"] == positions["run"], "check and run name the same place: \(positions)")
    }

    @Test("the configuration every case starts from passes check")
    func baselinePasses() async throws {
        let directory = TemporaryDirectory(prefix: "graph-bridge-agree")
        directory.write("bridge.yaml", Self.head + Self.inbox + Self.tail)
        let (status, _, stderr) = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
        #expect(status == 0, "\(stderr)")
    }
}
