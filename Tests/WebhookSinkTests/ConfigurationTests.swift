import BridgeCore
import BridgeSettings
import SinkAPI
import BridgeTemplates
import CurlKit
import Foundation
import Logging
import TestSupport
import Testing
import WebhookSink

@Suite("webhook configuration in bridge.yaml")
struct WebhookConfigurationTests {
    static let registry = SinkRegistry([WebhookSink.self])

    /// `bridge.yaml` with one receive-only subscription, the `chat` sink block given (indented
    /// under `chat:`, starting at line 8) and a catch-all route.
    static func yaml(_ sinkKeys: String) -> String {
        let indented = sinkKeys.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        return """
            subscriptions:
              - name: feed
                manage: false
                id: 11111111-2222-3333-4444-555555555555
                clientState: s3cret
            sinks:
              chat:
            \(indented)
            routes:
              - to: [chat]

            """
    }

    static func load(_ sinkKeys: String, environment: [String: String] = [:]) throws -> BridgeConfiguration {
        let folder = TemporaryDirectory(prefix: "webhook-config")
        let path = folder.write("bridge.yaml", yaml(sinkKeys))
        folder.write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
        return try withExtendedLifetime(folder) { try BridgeConfiguration.load(path: path, registry: registry, environment: environment) }
    }

    /// The `FILE:LINE:COL: message` lines, with the temp path replaced by `bridge.yaml`.
    static func errors(_ sinkKeys: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try load(sinkKeys, environment: environment)
            return []
        } catch let errors as ConfigErrors {
            return errors.errors.map { error in
                var error = error
                error.file = "bridge.yaml"
                return error.description
            }
        } catch {
            return ["\(error)"]
        }
    }

    @Test("a full block loads; the factory builds a webhook sink with concurrency 4")
    func loads() throws {
        let configuration = try Self.load(
            """
            type: webhook
            url: ${HOOK_URL}
            method: put
            format: teams
            text: "New mail from {{data.from.emailAddress.name}}: {{data.subject}}"
            headers:
              Authorization: "Bearer ${TOKEN}"
              X-Source: graph-bridge
            secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
            timeout: 2500ms
            caFile: ca.pem
            """, environment: ["HOOK_URL": "https://hooks.example.test/abc", "TOKEN": "t0k"])
        let sink = try #require(configuration.sinks.first)
        #expect(sink.type == "webhook")
        #expect(sink.concurrency == 4)
        let built = try sink.factory.makeSink(
            context: SinkContext(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), transport: sharedClient))
        let webhook = try #require(built as? WebhookSink)
        let body = try JSONParser.parse(webhook.payload(for: mailEvent(subject: "Hi")))
        #expect(body["attachments"]?.arrayValue?.first?["content"]?["body"]?.arrayValue?.first?["text"] == .string("New mail from Bob Example: Hi"))
    }

    @Test("the decoded keys carry what was written")
    func decodedValues() throws {
        let document = try ConfigDocument.parse(
            """
            url: https://hooks.example.test/abc
            method: patch
            headers: { Authorization: "Bearer ${TOKEN}", X-Source: graph-bridge }
            timeout: 2500ms
            body: '{"s": {{#json}}{{data.subject}}{{/json}}}'
            insecureSkipVerify: true
            """, file: "bridge.yaml", directory: "/tmp")
        let configuration = try ConfigDecoder(document: document, environment: ["TOKEN": "t0k"]).decode(WebhookSink.Configuration.self)
        #expect(configuration.url == "https://hooks.example.test/abc")
        #expect(configuration.method == "PATCH")
        #expect(configuration.headers.map { "\($0.name)=\($0.value)" } == ["Authorization=Bearer t0k", "X-Source=graph-bridge"])
        #expect(configuration.timeout == .milliseconds(2500))
        #expect(configuration.format == .json)
        #expect(configuration.body?.source == #"{"s": {{#json}}{{data.subject}}{{/json}}}"#)
        #expect(configuration.insecureSkipVerify)
        #expect(configuration.secret == nil && configuration.caFile == nil && configuration.text == nil)
    }

    @Test("a missing url is reported at the sink's block")
    func missingURL() {
        #expect(Self.errors("type: webhook\nformat: slack") == ["bridge.yaml:8:5: missing required key 'url' in sinks.chat"])
    }

    @Test("body and format together are reported at body")
    func bodyAndFormat() {
        let lines = Self.errors(
            """
            type: webhook
            url: https://example.test/hook
            format: slack
            body: '{"text": "{{data.subject}}"}'
            """)
        #expect(
            lines == [
                "bridge.yaml:11:11: 'body' and 'format' cannot be used together: body is the whole request body (remove format, or remove body and use text)"
            ])
    }

    @Test("a bad template is reported at its value, with where in the template")
    func badTemplate() {
        let lines = Self.errors(
            """
            type: webhook
            url: https://example.test/hook
            format: slack
            text: "New mail: {{dat.subject}}"
            """)
        #expect(
            lines == [
                "bridge.yaml:11:11: invalid template: unknown name 'dat' in {{dat.subject}} (did you mean 'data.subject'?); an event's top-level names are id, receivedAt, subscription, changeType, lifecycleEvent, resource, resourceData, tenantId, data, resync (template line 1, column 11)"
            ])
        let syntax = Self.errors(
            """
            type: webhook
            url: https://example.test/hook
            body: |
              {"text": {{#json}}{{data.subject}}
              }
            """)
        #expect(
            syntax == [
                "bridge.yaml:10:11: invalid template: {{#json}} is never closed (add {{/json}}) (template line 1, column 10)"
            ])
    }

    @Test("text without a chat format, and text with body, are errors at text")
    func textNeedsChat() {
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/hook\ntext: hi") == [
                "bridge.yaml:10:11: 'text' needs a chat format: add format: slack, teams, discord, googlechat or mattermost (or use body: for a custom JSON body)"
            ])
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/hook\ntext: hi\nbody: '{}'") == [
                "bridge.yaml:10:11: 'text' is not used when 'body' is given (put the text into the body template)"
            ])
    }

    @Test("url, format, headers, secret, caFile and unknown keys are checked where written")
    func otherErrors() {
        #expect(
            Self.errors("type: webhook\nurl: ftp://example.test/x") == [
                "bridge.yaml:9:10: url must be an absolute http:// or https:// URL"
            ])
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/x\nformat: teamz") == [
                "bridge.yaml:10:13: expected one of json, slack, teams, discord, googlechat, mattermost; found 'teamz' in sinks.chat.format"
            ])
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/x\nheaders:\n  webhook-id: mine") == [
                "bridge.yaml:11:19: header 'webhook-id' is set by the sink and cannot be configured"
            ])
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/x\nsecret: whsec_%%%") == [
                "bridge.yaml:10:13: secret starts with whsec_ but the rest is not base64 (whsec_ secrets are base64 of random bytes)"
            ])
        #expect(Self.errors("type: webhook\nurl: https://example.test/x\ncaFile: missing.pem").first?.hasPrefix("bridge.yaml:10:13: caFile ") == true)
        #expect(
            Self.errors("type: webhook\nurl: https://example.test/x\nformt: slack") == [
                "bridge.yaml:10:5: unknown key 'formt' in sinks.chat (did you mean 'format'?)"
            ])
    }
}
