import BridgeCore
import BridgeSettings
import SinkAPI
import BridgeTemplates
import CurlKit
import Foundation
import Logging
import SMTPSink
import TestSupport
import Testing

/// A new-mail event whose subject has non-ASCII letters, quotes and an emoji.
func mailEvent(subject: String = "„Quartalszahlen“ \"Q3\" 📈 — bitte prüfen") -> BridgeEvent {
    BridgeEvent(
        id: EventID.make(),
        receivedAt: Date(timeIntervalSince1970: 1_796_000_000.123),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("2")]),
        tenantId: "tenant",
        data: .object([
            "subject": .string(subject),
            "from": .object(["emailAddress": .object(["name": .string("Jürgen Groß"), "address": .string("juergen@contoso.com")])]),
        ])
    )
}

/// Loads `yaml` (a whole `bridge.yaml`) with only the smtp sink registered and builds its first sink.
func loadSink(
    _ yaml: String, in folder: TemporaryDirectory, environment: [String: String] = [:], context: SinkContext
) throws -> any Sink {
    let file = folder.file("bridge.yaml")
    _ = FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8))
    let configuration = try BridgeConfiguration.load(path: file, registry: SinkRegistry([SMTPSink.self]), environment: environment)
    let sink = try #require(configuration.sinks.first)
    return try sink.factory.makeSink(context: context)
}

func quietContext(_ client: CurlClient) -> SinkContext {
    SinkContext(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), transport: client)
}

let firstAttempt = DeliveryAttempt(number: 1, deliveryID: 1)

@Suite("smtp sink against aiosmtpd", .machine(.processes))
struct SMTPSinkTests {
    static let subjectTemplate = "Neue Mail von {{data.from.emailAddress.name}}: {{data.subject}}"
    static let textTemplate = """
        Von: {{data.from.emailAddress.name}} <{{data.from.emailAddress.address}}>
        Betreff: {{data.subject}}
        .
        ..zwei Punkte
        Leerzeichen am Ende:   
        {{resource}} {{resource}} {{resource}} {{resource}} {{resource}} {{resource}} {{resource}} {{resource}} {{resource}}
        = ist kein Escape =3D
        """
    static let htmlTemplate = "<p>Neue Mail: <b>{{data.subject}}</b></p>\n<p>Von {{data.from.emailAddress.name}} &amp; Co.</p>"

    @Test("the received message: decoded subject, headers, text then html, exact bodies, Bcc only in the envelope")
    func fullMessage() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-sink")
        try await withSMTPServer { (server) async throws in
            let client = CurlClient()
            let yaml = """
                sinks:
                  mail:
                    type: smtp
                    url: \(server.url())
                    tls: none
                    from: "Graph Bridge <bridge@example.com>"
                    to: ["Ops Team <ops@example.com>", oncall@example.com]
                    cc: ["\\"Audit, Internal\\" <audit@example.com>"]
                    bcc: [archive-hidden@example.com]
                    subject: \(jsonQuoted(Self.subjectTemplate))
                    text: \(jsonQuoted(Self.textTemplate))
                    html: \(jsonQuoted(Self.htmlTemplate))
                """
            let sink = try loadSink(yaml, in: folder, context: quietContext(client))
            let event = mailEvent()
            try await sink.deliver(event, attempt: firstAttempt)

            let messages = try server.messages()
            try #require(messages.count == 1)
            let message = messages[0]
            let parsed = message.parsed
            #expect(parsed.error == nil)
            #expect(parsed.defects == [])

            // Envelope: every recipient, Bcc included; the sender's bare address.
            #expect(message.mail_from == "bridge@example.com")
            #expect(message.rcpt_tos == ["ops@example.com", "oncall@example.com", "audit@example.com", "archive-hidden@example.com"])
            // Headers: no Bcc, and the Bcc address nowhere in the message.
            #expect(parsed.header("Bcc") == nil)
            #expect(!String(decoding: message.data, as: UTF8.self).contains("archive-hidden"))

            let expectedSubject = try HeaderTemplate(Self.subjectTemplate).render(event)
            #expect(expectedSubject == "Neue Mail von Jürgen Groß: „Quartalszahlen“ \"Q3\" 📈 — bitte prüfen")
            #expect(parsed.header("Subject") == expectedSubject)
            #expect(parsed.rawHeader("Subject")?.hasPrefix("=?UTF-8?Q?") == true)
            #expect(parsed.header("From") == "Graph Bridge <bridge@example.com>")
            #expect(parsed.header("To") == "Ops Team <ops@example.com>, oncall@example.com")
            #expect(parsed.header("Cc") == "\"Audit, Internal\" <audit@example.com>")
            #expect(parsed.header("MIME-Version") == "1.0")
            #expect(parsed.header("X-Graph-Bridge-Event") == event.id)
            #expect(parsed.header("Auto-Submitted") == "auto-generated")
            let messageID = try #require(parsed.header("Message-ID"))
            #expect(messageID.hasPrefix("<\(event.id).") && messageID.hasSuffix("@example.com>"))
            let date = try #require(parsed.header("Date"))
            #expect(date.wholeMatch(of: /(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000/) != nil, "\(date)")
            for name in ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version"] {
                #expect(parsed.values(name).count == 1, "exactly one \(name)")
            }

            // Body: multipart/alternative, text/plain first, then text/html; both decode exactly.
            #expect(parsed.content_type == "multipart/alternative")
            let parts = try #require(parsed.parts)
            try #require(parts.count == 2)
            #expect(parts.map(\.content_type) == ["text/plain", "text/html"])
            #expect(parts.allSatisfy { $0.charset == "utf-8" && $0.cte == "quoted-printable" && $0.defects.isEmpty })
            let expectedText = try TextTemplate(Self.textTemplate).render(event)
            let expectedHTML = try HTMLTemplate(Self.htmlTemplate).render(event)
            #expect(expectedText.contains("\n.\n..zwei Punkte\nLeerzeichen am Ende:   \n"))
            #expect(expectedHTML.contains("&quot;Q3&quot;"))
            #expect(parts[0].content.map(unixLines) == expectedText)
            #expect(parts[1].content.map(unixLines) == expectedHTML)

            // Wire form: CRLF only, no line longer than 78.
            #expect(parsed.bare_lf == false)
            #expect((parsed.max_line_length ?? 999) <= 78)
            await client.shutdown()
        }
    }

    @Test("STARTTLS with caFile (relative to the config) and AUTH with the password from the environment")
    func starttlsAndAuth() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-sink")
        let certificate = try await makeSelfSignedCertificate(in: folder.path, name: "relay")
        try await withSMTPServer(["--starttls", certificate.cert, certificate.key, "--auth", "bridge@example.com:pa55 w0rd"]) {
            (server) async throws in
            let client = CurlClient()
            let logs = LogCapture()
            let yaml = """
                sinks:
                  mail:
                    type: smtp
                    url: \(server.url())
                    caFile: relay.pem
                    username: bridge@example.com
                    password: ${SMTP_PASSWORD}
                    from: bridge@example.com
                    to: ops@example.com
                    subject: "Plain ASCII subject for {{subscription.name}}"
                    text: "Just text: {{data.subject}}"
                """
            let sink = try loadSink(
                yaml, in: folder, environment: ["SMTP_PASSWORD": "pa55 w0rd"],
                context: SinkContext(logger: logs.logger(), transport: client))
            try await sink.deliver(mailEvent(), attempt: firstAttempt)
            let messages = try server.messages()
            try #require(messages.count == 1)
            #expect(messages[0].tls && messages[0].authenticated && messages[0].auth_user == "bridge@example.com")
            #expect(messages[0].parsed.header("Subject") == "Plain ASCII subject for inbox")
            #expect(messages[0].parsed.rawHeader("Subject") == "Plain ASCII subject for inbox")
            #expect(messages[0].parsed.content_type == "text/plain")
            #expect(messages[0].parsed.parts?.first?.content.map(unixLines) == "Just text: „Quartalszahlen“ \"Q3\" 📈 — bitte prüfen")
            #expect(!logs.entries.contains { "\($0)".contains("pa55") }, "the password is never logged")
            await client.shutdown()
        }
    }

    @Test("insecureSkipVerify: delivers to an unknown certificate, and says so loudly at start")
    func insecureSkipVerify() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-sink")
        let certificate = try await makeSelfSignedCertificate(in: folder.path, name: "relay")
        try await withSMTPServer(["--implicit-tls", certificate.cert, certificate.key]) { (server) async throws in
            let client = CurlClient()
            let logs = LogCapture()
            let yaml = """
                sinks:
                  mail:
                    type: smtp
                    url: \(server.url(scheme: "smtps"))
                    insecureSkipVerify: true
                    from: bridge@example.com
                    to: [ops@example.com]
                """
            let sink = try loadSink(yaml, in: folder, context: SinkContext(logger: logs.logger(), transport: client))
            #expect(logs.entries.contains { $0.level == .warning && "\($0)".contains("insecureSkipVerify") })
            try await sink.deliver(mailEvent(), attempt: firstAttempt)
            let messages = try server.messages()
            try #require(messages.count == 1)
            #expect(messages[0].tls)
            // The defaults: subject and a text summary.
            #expect(messages[0].parsed.header("Subject") == "graph-bridge: inbox created")
            #expect(messages[0].parsed.parts?.first?.content?.contains("Resource: Users/1/Messages/2") == true)
            await client.shutdown()
        }
    }

    @Test("tls: starttls against a server that offers no STARTTLS: permanent, nothing sent in the clear")
    func noStarttls() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-sink")
        let certificate = try await makeSelfSignedCertificate(in: folder.path, name: "relay")
        try await withSMTPServer(["--starttls", certificate.cert, certificate.key, "--no-starttls", "--auth", "u:p"]) {
            (server) async throws in
            let client = CurlClient()
            let yaml = """
                sinks:
                  mail:
                    type: smtp
                    url: \(server.url())
                    caFile: relay.pem
                    username: u
                    password: p
                    from: bridge@example.com
                    to: [ops@example.com]
                """
            let sink = try loadSink(yaml, in: folder, context: quietContext(client))
            await #expect {
                try await sink.deliver(mailEvent(), attempt: firstAttempt)
            } throws: { error in
                guard let error = error as? SinkError else { return false }
                return error.disposition == .permanent && error.message.contains("STARTTLS")
            }
            #expect(try server.mailCommands().isEmpty, "no MAIL FROM in clear")
            #expect(try server.messages().isEmpty)
            await client.shutdown()
        }
    }

    static func plainSink(url: String, client: CurlClient, timeout: Duration = .seconds(20)) throws -> SMTPSink {
        try SMTPSink(
            name: "mail",
            configuration: .init(
                url: url, security: .none, from: Mailbox(address: "bridge@example.com"),
                to: [Mailbox(address: "ops@example.com")], subject: HeaderTemplate("s"), text: TextTemplate("t"),
                timeout: timeout),
            context: quietContext(client))
    }

    static func disposition(of sink: SMTPSink) async -> SinkError.Disposition? {
        await failure(of: sink)?.disposition
    }

    static func failure(of sink: SMTPSink) async -> SinkError? {
        do {
            try await sink.deliver(mailEvent(), attempt: firstAttempt)
            return nil
        } catch let error as SinkError {
            return error
        } catch {
            Issue.record("not a SinkError: \(error)")
            return nil
        }
    }

    @Test(
        "outcomes: 4xx retryable, 5xx permanent, dropped connection and timeout retryable",
        arguments: [
            (["--reply", "rcpt:451:4.7.1 Greylisted, try again"], SinkError.Disposition.retry(after: nil)),
            (["--reply", "data:452:4.3.1 Insufficient storage"], .retry(after: nil)),
            (["--reply", "rcpt:550:5.1.1 No such user"], .permanent),
            (["--reply", "data:554:5.7.1 Spam"], .permanent),
            (["--drop-in-data"], .retry(after: nil)),
            (["--silent"], .retry(after: nil)),
        ])
    func outcomes(arguments: [String], expected: SinkError.Disposition) async throws {
        try await withSMTPServer(arguments) { (server) async throws in
            let client = CurlClient()
            let sink = try Self.plainSink(url: server.url(), client: client, timeout: .seconds(arguments == ["--silent"] ? 1 : 20))
            let failure = await Self.failure(of: sink)
            #expect(failure?.disposition == expected)
            if arguments[0] == "--reply" {
                // The server's own words reach the delivery's error (and so dead-letters list).
                let reply = arguments[1].split(separator: ":", maxSplits: 1).last.map { $0.replacingOccurrences(of: ":", with: " ") }
                #expect(failure?.message.contains(reply ?? "?") == true, "\(String(describing: failure))")
            }
            #expect(try server.messages().isEmpty)
            await client.shutdown()
        }
    }

    @Test("a refused connection is retryable; the same sink delivers once the server is back")
    func refusedThenDelivered() async throws {
        let client = CurlClient()
        try await withRefusingPort { port in
            let refused = try Self.plainSink(url: "smtp://127.0.0.1:\(port)", client: client)
            #expect(await Self.disposition(of: refused) == .retry(after: nil))
        }
        try await withSMTPServer(["--reply", "rcpt:421:4.3.2 Try later", "--reply-times", "1"]) { (server) async throws in
            let sink = try Self.plainSink(url: server.url(), client: client)
            #expect(await Self.disposition(of: sink) == .retry(after: nil))
            try await sink.deliver(mailEvent(), attempt: DeliveryAttempt(number: 2, deliveryID: 1))
            #expect(try server.messages().count == 1)
        }
        await client.shutdown()
    }
}

/// CRLF → LF: text parts travel with CRLF line breaks (MIME's canonical form).
func unixLines(_ text: String) -> String {
    text.replacingOccurrences(of: "\r\n", with: "\n")
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
func jsonQuoted(_ text: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
    return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
}
