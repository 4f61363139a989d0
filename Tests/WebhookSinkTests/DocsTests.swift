import BridgeCore
import BridgeSettings
import SinkAPI
import Foundation
import TestSupport
import Testing
import WebhookSink

/// docs/sinks.md's webhook section is checked against the code: its YAML examples load and its
/// receiver-side verification snippet accepts what the sink sends.
@Suite("docs/sinks.md webhook section", .machine(.processes))
struct WebhookDocsTests {
    /// The repository's docs/sinks.md, found from this file (through any symlinked test folder).
    static let docsPath = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/sinks.md").path

    /// The fenced blocks of `language` in the `## webhook` section.
    static func blocks(_ language: String) throws -> [String] {
        let text = try String(contentsOfFile: docsPath, encoding: .utf8)
        let section =
            try #require(text.components(separatedBy: "\n## webhook\n").dropFirst().first)
            .components(separatedBy: "\n## ").first ?? ""
        var blocks: [String] = []
        var current: [String]?
        for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```\(language)" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(String(line))
            }
        }
        return blocks
    }

    @Test("every YAML example loads with graph-bridge's configuration loader")
    func yamlExamples() throws {
        let examples = try Self.blocks("yaml")
        #expect(examples.count == 6)
        let environment = [
            "SLACK_WEBHOOK_URL": "https://hooks.example.test/s", "TEAMS_WORKFLOW_URL": "https://flows.example.test/t",
            "DISCORD_WEBHOOK_URL": "https://discord.example.test/d", "GOOGLE_CHAT_WEBHOOK_URL": "https://chat.example.test/g",
            "MATTERMOST_WEBHOOK_URL": "https://mm.example.test/m", "TICKETS_TOKEN": "t",
        ]
        for example in examples {
            let yaml = """
                subscriptions:
                  - { name: inbox, manage: false, id: 11111111-2222-3333-4444-555555555555, clientState: s3cret }
                \(example)

                """
            let document = try ConfigDocument.parse(yaml, file: "example.yaml", directory: "/tmp")
            do {
                let configuration = try BridgeConfiguration.load(
                    document: document, registry: SinkRegistry([WebhookSink.self]), environment: environment)
                #expect(configuration.sinks.map(\.type) == ["webhook"])
            } catch {
                Issue.record("example does not load: \(error)\n\(example)")
            }
        }
    }

    @Test("the Python verification snippet accepts the sink's signature and rejects a changed body")
    func pythonVerifier() async throws {
        let snippet = try #require(Self.blocks("python").first)
        let secret = "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .teams, secret: try WebhookSecret(secret)))
            try await under.deliver(mailEvent(subject: nastySubject))
            let request = try receiver.onlyRequest()
            let program =
                snippet + """

                    import sys
                    headers = {"webhook-id": sys.argv[1], "webhook-timestamp": sys.argv[2], "webhook-signature": sys.argv[3]}
                    body = base64.b64decode(sys.argv[5])
                    if sys.argv[6] == "tamper":
                        body = body + b" "
                    sys.exit(0 if verify(sys.argv[4], headers, body) else 1)
                    """
            let arguments = [
                "python3", "-c", program, request.header("webhook-id") ?? "", request.header("webhook-timestamp") ?? "",
                request.header("webhook-signature") ?? "", secret, request.body_b64,
            ]
            try await runCommand(arguments + ["as-sent"])
            await #expect(throws: (any Error).self) { try await runCommand(arguments + ["tamper"]) }
        }
    }
}
