import SinkAPI
import BridgeTemplates
import CurlKit
import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing
import WebhookSink

@Suite("webhook payloads", .machine(.processes))
struct WebhookPayloadTests {
    @Test("format json (the default) sends the event exactly as the file sink writes it")
    func eventBody() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook")))
            let event = mailEvent()
            try await under.deliver(event)
            let request = try receiver.onlyRequest()
            #expect(request.method == "POST")
            #expect(request.path == "/hook")
            #expect(request.body == event.encoded())
            #expect(request.header("Content-Type") == "application/json")
            #expect(request.header("webhook-id") == event.id)
            #expect(request.header("webhook-signature") == nil)
        }
    }

    @Test(
        "slack, mattermost and googlechat send {\"text\": ...} and nothing else",
        arguments: [
            WebhookSink.Format.slack, .mattermost, .googlechat,
        ])
    func textFormats(format: WebhookSink.Format) async throws {
        try await withHTTPReceiver { receiver in
            let text = try TextTemplate("Mail from {{data.from.emailAddress.name}}: {{data.subject}} [{{data.importance}}]")
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: format, text: text))
            try await under.deliver(mailEvent())
            let body = try receiver.onlyRequest().json
            #expect(body.objectValue?.keys == ["text"])
            #expect(body["text"] == .string("Mail from Bob Example: Quarterly numbers [high]"))
        }
    }

    @Test("teams sends the Workflows Adaptive Card envelope")
    func teams() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .teams, text: try TextTemplate("{{data.subject}}")))
            try await under.deliver(mailEvent(subject: nastySubject))
            let body = try receiver.onlyRequest().json
            #expect(body.objectValue?.keys == ["type", "attachments"])
            #expect(body["type"] == .string("message"))
            let attachments = try #require(body["attachments"]?.arrayValue)
            #expect(attachments.count == 1)
            let attachment = attachments[0]
            #expect(attachment["contentType"] == .string("application/vnd.microsoft.card.adaptive"))
            #expect(attachment["contentUrl"] == .null)
            let card = try #require(attachment["content"])
            #expect(card["$schema"] == .string("http://adaptivecards.io/schemas/adaptive-card.json"))
            #expect(card["type"] == .string("AdaptiveCard"))
            #expect(card["version"] == .string("1.4"))
            #expect(card["msteams"] == .object(["width": .string("full")]))
            let blocks = try #require(card["body"]?.arrayValue)
            #expect(blocks.count == 1)
            #expect(blocks[0] == .object(["type": .string("TextBlock"), "text": .string(nastySubject), "wrap": .bool(true)]))
        }
    }

    @Test("discord sends content with mentions disabled")
    func discord() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .discord, text: try TextTemplate("@everyone {{data.subject}}")))
            try await under.deliver(mailEvent())
            let body = try receiver.onlyRequest().json
            #expect(body.objectValue?.keys == ["content", "allowed_mentions"])
            #expect(body["content"] == .string("@everyone Quarterly numbers"))
            #expect(body["allowed_mentions"] == .object(["parse": .array([])]))
            #expect(under.log.entries.isEmpty)
        }
    }

    @Test("discord content is cut to 2000 characters at a character boundary, with a warning")
    func discordTruncation() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .discord, text: try TextTemplate("{{data.subject}}")))
            // 1999 ASCII characters then emoji (two UTF-16 units each, one of them a flag of two scalars).
            let subject = String(repeating: "a", count: 1998) + "🚀🇩🇪" + String(repeating: "b", count: 100)
            let event = mailEvent(subject: subject)
            try await under.deliver(event)
            let content = try #require(receiver.onlyRequest().json["content"]?.stringValue)
            #expect(content == String(repeating: "a", count: 1998) + "…")
            #expect(content.utf16.count <= 2000)
            let warnings = under.log.entries.filter { $0.level == .warning }
            #expect(warnings.count == 1)
            #expect(warnings.first?.message.description.contains("truncated") == true)
            #expect(warnings.first?.metadata["bridge.event"] == .string(event.id))
            let exact = String(repeating: "c", count: 2000)
            #expect(try TextTemplate("{{data.subject}}").render(mailEvent(subject: exact)).count == 2000)
            try await under.deliver(mailEvent(subject: exact))
            #expect(try receiver.recordedRequests().last?.json["content"] == .string(exact))
        }
    }

    @Test("chat formats without text use the default text")
    func defaultText() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .mattermost))
            try await under.deliver(mailEvent())
            let lifecycle = BridgeEvent(
                id: "evt-l", receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: nil),
                lifecycleEvent: "missed")
            try await under.deliver(lifecycle)
            let bare = BridgeEvent(
                id: "evt-b", receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: nil),
                changeType: "deleted", resource: "Users/1/Messages/9")
            try await under.deliver(bare)
            let texts = try receiver.recordedRequests().map { try $0.json["text"]?.stringValue }
            #expect(
                texts == [
                    "[inbox] created: Quarterly numbers (from Bob Example, bob@contoso.com)",
                    "graph-bridge: lifecycle event missed for subscription inbox",
                    "[inbox] deleted Users/1/Messages/9",
                ])
        }
    }

    @Test("slack: values cannot form links or mentions; the template's own markup stays")
    func slackEscaping() async throws {
        try await withHTTPReceiver { receiver in
            let text = try TextTemplate("<https://outlook.office.com|Open> {{data.subject}}")
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .slack, text: text))
            try await under.deliver(mailEvent(subject: "<!channel> a & b > c"))
            #expect(try receiver.onlyRequest().json["text"] == .string("<https://outlook.office.com|Open> &lt;!channel&gt; a &amp; b &gt; c"))
        }
    }

    /// A subject that tries every mention and markup trick of Google Chat and Mattermost.
    static let pingingSubject =
        "<users/all> <users/123456> @channel @here @all (@all) x.@channel -@here @Alice ![pixel](https://evil.example/p.png) "
        + "[Click](https://evil.example) <https://evil.example|Invoice> <!channel> mail alice@contoso.com"

    @Test("google chat: values cannot mention users/all, link or embed; the template's own markup stays")
    func googleChatEscaping() async throws {
        try await withHTTPReceiver { receiver in
            let text = try TextTemplate("<users/all> <https://outlook.office.com|Open> {{data.subject}}")
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .googlechat, text: text))
            try await under.deliver(mailEvent(subject: Self.pingingSubject))
            let received = try #require(receiver.onlyRequest().json["text"]?.stringValue)
            let z = "\u{200B}"
            #expect(
                received == "<users/all> <https://outlook.office.com|Open> "
                    + "<\(z)users/all> <\(z)users/123456> @\(z)channel @\(z)here @\(z)all (@\(z)all) x.@\(z)channel -@\(z)here @\(z)Alice "
                    + "![pixel]\(z)(https://evil.example/p.png) [Click]\(z)(https://evil.example) <\(z)https://evil.example|Invoice> "
                    + "<\(z)!channel> mail alice@contoso.com")
            // What the service would parse: no mention, link or image syntax left in the value's part.
            let value = String(received.dropFirst("<users/all> <https://outlook.office.com|Open> ".count))
            for pattern in ["<users/", "<https:", "<!", "](", "@channel", "@here", "@all", "@Alice"] {
                #expect(!value.contains(pattern), "\(pattern) survived in \(value)")
            }
            #expect(value.replacingOccurrences(of: z, with: "") == Self.pingingSubject)
        }
    }

    @Test("mattermost: values cannot ping @channel, @here, @all or a user, nor link or embed; the template's own markup stays")
    func mattermostEscaping() async throws {
        try await withHTTPReceiver { receiver in
            let text = try TextTemplate("@here [Open](https://outlook.office.com) {{data.subject}} {{data.from.emailAddress.address}}")
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .mattermost, text: text))
            try await under.deliver(mailEvent(subject: Self.pingingSubject))
            let received = try #require(receiver.onlyRequest().json["text"]?.stringValue)
            let prefix = "@here [Open](https://outlook.office.com) "
            #expect(received.hasPrefix(prefix))
            #expect(received.hasSuffix(" bob@contoso.com"))
            let value = String(received.dropFirst(prefix.count).dropLast(" bob@contoso.com".count))
            // Mattermost's own word split (letters, digits and :.-_@ make words, then . - : split again) finds no mention.
            let inWord: (Unicode.Scalar) -> Bool = {
                $0.properties.isAlphabetic || $0.properties.numericType != nil || ":.-_@".unicodeScalars.contains($0)
            }
            let words = value.unicodeScalars.split { !inWord($0) }
                .flatMap { String(String.UnicodeScalarView($0)).split(whereSeparator: { ".-:".contains($0) }) }
                .map { $0.trimmingPrefix(while: { ":.-_".contains($0) }) }
            #expect(!words.contains { $0.hasPrefix("@") && $0.count > 1 }, "\(words)")
            for pattern in ["](", "<!", "<https:", "<users/"] {
                #expect(!value.contains(pattern), "\(pattern) survived in \(value)")
            }
            #expect(value.replacingOccurrences(of: "\u{200B}", with: "") == Self.pingingSubject)
            #expect(value.contains("alice@contoso.com"))
        }
    }

    @Test("the default text puts no value inside angle brackets, so a sender's address cannot complete a <url|label> link")
    func defaultTextLinks() async throws {
        for format in [WebhookSink.Format.slack, .googlechat, .mattermost] {
            try await withHTTPReceiver { receiver in
                let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: format))
                var event = mailEvent()
                event.data = .object([
                    "subject": .string("Invoice"),
                    "from": .object(["emailAddress": .object(["name": .string("Billing"), "address": .string("https://evil.example|Pay now")])]),
                ])
                try await under.deliver(event)
                let text = try #require(receiver.onlyRequest().json["text"]?.stringValue)
                #expect(text == "[inbox] created: Invoice (from Billing, https://evil.example|Pay now)", "\(format)")
            }
        }
    }

    @Test("configured headers and method are sent; Content-Type may be overridden")
    func headers() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(
                .init(
                    url: receiver.url("/hook"), method: "PUT",
                    headers: [("Authorization", "Bearer t0ken"), ("Content-Type", "application/json; charset=utf-8")]))
            try await under.deliver(mailEvent())
            let request = try receiver.onlyRequest()
            #expect(request.method == "PUT")
            #expect(request.header("Authorization") == "Bearer t0ken")
            #expect(request.headers.filter { $0.first?.lowercased() == "content-type" }.map { $0.last } == ["application/json; charset=utf-8"])
        }
    }
}

@Suite("webhook escaping", .machine(.processes))
struct WebhookEscapingTests {
    @Test("a nasty subject in text arrives as valid JSON equal to the subject", arguments: WebhookSink.Format.allCases.filter(\.isChat))
    func text(format: WebhookSink.Format) async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: format, text: try TextTemplate("{{data.subject}}")))
            try await under.deliver(mailEvent(subject: nastySubject))
            let body = try receiver.onlyRequest().json
            let text: JSONValue? =
                switch format {
                case .teams: body["attachments"]?.arrayValue?.first?["content"]?["body"]?.arrayValue?.first?["text"]
                case .discord: body["content"]
                default: body["text"]
                }
            let expected =
                switch format {
                case .slack:
                    nastySubject.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
                        of: ">", with: "&gt;")
                case .googlechat, .mattermost: nastySubject.replacingOccurrences(of: "<", with: "<\u{200B}")
                default: nastySubject
                }
            #expect(text == .string(expected))
        }
    }

    @Test("a nasty subject in a custom body: {{#json}} section and quoted value both equal it")
    func customBody() async throws {
        try await withHTTPReceiver { receiver in
            let body = try JSONTemplate(
                #"{"msg": {{#json}}{{data.subject}}{{/json}}, "quoted": "{{data.subject}}", "line": {{#json}}From {{data.from.emailAddress.name}}: {{data.subject}}{{/json}}, "n": 1}"#
            )
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), body: body))
            try await under.deliver(mailEvent(subject: nastySubject))
            let request = try receiver.onlyRequest()
            let parsed = try request.json
            #expect(parsed["msg"] == .string(nastySubject))
            #expect(parsed["quoted"] == .string(nastySubject))
            #expect(parsed["line"] == .string("From Bob Example: \(nastySubject)"))
            #expect(parsed["n"] == .number("1"))
            // Independently of our parser: Foundation agrees.
            let foundation = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
            #expect(foundation?["msg"] as? String == nastySubject)
        }
    }

    @Test("a body that does not render to JSON is a permanent failure and nothing is sent")
    func invalidBody() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), body: try JSONTemplate(#"{"msg": {{data.subject}}}"#)))
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            #expect(error.disposition == .permanent)
            #expect(error.message.contains("did not produce valid JSON"))
            #expect(try receiver.recordedRequests().isEmpty)
        }
    }
}
