import CurlKit
import Foundation
import TestSupport
import Testing

/// `CurlClient.sendMail` against a real SMTP server (aiosmtpd, `Tests/Support/smtp_server.py`).
@Suite("CurlKit SMTP transfer", .machine(.processes))
struct SMTPTransportTests {
    /// A small CRLF message whose body has the lines libcurl must dot-stuff.
    static let message = Array(
        "From: bridge@example.com\r\nTo: ops@example.com\r\nSubject: test\r\n\r\nfirst\r\n.\r\n..two dots\r\n.leading dot\r\nlast\r\n"
            .utf8)

    static func envelope(_ url: String, security: SMTPEnvelope.Security = .none, tls: TLSOptions = .init()) -> SMTPEnvelope {
        SMTPEnvelope(
            url: url, security: security, tls: tls, from: "bridge@example.com",
            recipients: ["ops@example.com", "audit@example.com"], timeout: .seconds(20))
    }

    @Test("plain: the envelope and the exact bytes arrive; lines starting with dots survive")
    func plain() async throws {
        try await withSMTPServer { (server) async throws in
            let client = CurlClient()
            let result = try await client.sendMail(Self.envelope(server.url()), message: Self.message)
            #expect(result.replyCode == 250)
            #expect(result.reply.contains("queued as TEST1"))
            let messages = try server.messages()
            try #require(messages.count == 1)
            #expect(messages[0].mail_from == "bridge@example.com")
            #expect(messages[0].rcpt_tos == ["ops@example.com", "audit@example.com"])
            #expect(messages[0].tls == false)
            // aiosmtpd strips the dot-stuffing libcurl added: the content is the message as given.
            #expect(messages[0].data == Self.message)
            await client.shutdown()
        }
    }

    @Test("STARTTLS with caFile: the message travels in TLS; an unknown CA fails as .tls with nothing sent")
    func starttls() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-tls")
        let server = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        let other = try await makeSelfSignedCertificate(in: folder.path, name: "other")
        try await withSMTPServer(["--starttls", server.cert, server.key]) { (smtp) async throws in
            let client = CurlClient()
            let result = try await client.sendMail(
                Self.envelope(smtp.url(), security: .starttls, tls: TLSOptions(caFile: server.cert)), message: Self.message)
            #expect(result.replyCode == 250)
            let messages = try smtp.messages()
            #expect(messages.count == 1 && messages[0].tls && messages[0].data == Self.message)

            for tls in [TLSOptions(), TLSOptions(caFile: other.cert)] {
                let error = await #expect(throws: TransportError.self) {
                    try await client.sendMail(Self.envelope(smtp.url(), security: .starttls, tls: tls), message: Self.message)
                }
                #expect(error?.kind == .tls, "\(tls)")
                #expect(error?.isTransient == false)
            }
            #expect(try smtp.mailCommands().count == 1, "no MAIL FROM after a failed handshake")
            await client.shutdown()
        }
    }

    @Test("starttls against a server without STARTTLS fails; no MAIL FROM, no message in clear")
    func noStarttls() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-tls")
        let server = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        try await withSMTPServer(["--starttls", server.cert, server.key, "--no-starttls"]) { (smtp) async throws in
            let client = CurlClient()
            let error = await #expect(throws: TransportError.self) {
                try await client.sendMail(
                    Self.envelope(smtp.url(), security: .starttls, tls: TLSOptions(caFile: server.cert)), message: Self.message)
            }
            #expect(error?.kind == .tls)
            #expect(error?.isTransient == false)
            #expect(error?.smtpReplyCode == nil)
            #expect(try smtp.mailCommands().isEmpty)
            #expect(try smtp.messages().isEmpty)
            await client.shutdown()
        }
    }

    @Test("implicit TLS (smtps://)")
    func implicitTLS() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-tls")
        let server = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        try await withSMTPServer(["--implicit-tls", server.cert, server.key]) { (smtp) async throws in
            let client = CurlClient()
            let envelope = Self.envelope(smtp.url(scheme: "smtps"), security: .implicit, tls: TLSOptions(caFile: server.cert))
            #expect(try await client.sendMail(envelope, message: Self.message).replyCode == 250)
            let messages = try smtp.messages()
            #expect(messages.count == 1 && messages[0].tls)
            await client.shutdown()
        }
    }

    @Test("AUTH after STARTTLS; a wrong password is a permanent 535")
    func auth() async throws {
        let folder = TemporaryDirectory(prefix: "smtp-tls")
        let server = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        try await withSMTPServer(["--starttls", server.cert, server.key, "--auth", "bridge:s3cret pass"]) { (smtp) async throws in
            let client = CurlClient()
            var envelope = Self.envelope(smtp.url(), security: .starttls, tls: TLSOptions(caFile: server.cert))
            envelope.username = "bridge"
            envelope.password = "s3cret pass"
            #expect(try await client.sendMail(envelope, message: Self.message).replyCode == 250)
            let messages = try smtp.messages()
            #expect(messages.count == 1 && messages[0].authenticated && messages[0].auth_user == "bridge")

            envelope.password = "wrong"
            let error = await #expect(throws: TransportError.self) { try await client.sendMail(envelope, message: Self.message) }
            #expect(error?.kind == .smtpRejected)
            #expect(error?.smtpReplyCode == 535)
            #expect(error?.isTransient == false)
            #expect(error.map { !$0.description.contains("wrong") } == true, "no password in the error")

            envelope.username = nil
            envelope.password = nil
            let anonymous = await #expect(throws: TransportError.self) { try await client.sendMail(envelope, message: Self.message) }
            #expect(anonymous?.smtpReplyCode == 530)
            #expect(try smtp.messages().count == 1)
            await client.shutdown()
        }
    }

    @Test("4xx at RCPT is transient, 5xx at DATA permanent; the server's words are in the error")
    func rejections() async throws {
        let client = CurlClient()
        try await withSMTPServer(["--reply", "rcpt:450:4.2.1 Mailbox busy, try later"]) { (smtp) async throws in
            let error = await #expect(throws: TransportError.self) {
                try await client.sendMail(Self.envelope(smtp.url()), message: Self.message)
            }
            #expect(error?.kind == .smtpRejected)
            #expect(error?.smtpReplyCode == 450)
            #expect(error?.isTransient == true)
            #expect(error?.message.contains("Mailbox busy") == true)
            #expect(try smtp.messages().isEmpty)
        }
        try await withSMTPServer(["--reply", "data:554:5.7.1 Message refused", "--reply-times", "1"]) { (smtp) async throws in
            let error = await #expect(throws: TransportError.self) {
                try await client.sendMail(Self.envelope(smtp.url()), message: Self.message)
            }
            #expect(error?.kind == .smtpRejected)
            #expect(error?.smtpReplyCode == 554)
            #expect(error?.isTransient == false)
            #expect(error?.message.contains("Message refused") == true)
            // The next send gets a fresh session and goes through.
            #expect(try await client.sendMail(Self.envelope(smtp.url()), message: Self.message).replyCode == 250)
            #expect(try smtp.messages().count == 1)
        }
        await client.shutdown()
    }

    @Test("a connection closed in the middle of DATA, and a refused connection, are transient")
    func connectionFailures() async throws {
        let client = CurlClient()
        try await withSMTPServer(["--drop-in-data"]) { (smtp) async throws in
            let error = await #expect(throws: TransportError.self) {
                try await client.sendMail(Self.envelope(smtp.url()), message: Self.message)
            }
            #expect(error?.isTransient == true, "\(String(describing: error))")
            #expect(error?.smtpReplyCode == nil)
            #expect(try smtp.messages().isEmpty)
        }
        try await withRefusingPort { port in
            let refused = await #expect(throws: TransportError.self) {
                try await client.sendMail(Self.envelope("smtp://127.0.0.1:\(port)"), message: Self.message)
            }
            #expect(refused?.kind == .couldNotConnect)
            #expect(refused?.isTransient == true)
        }
        await client.shutdown()
    }

    @Test("malformed envelopes and messages are refused before anything is sent")
    func validation() async throws {
        let client = CurlClient()
        let url = "smtp://127.0.0.1:1"
        let cases: [(SMTPEnvelope, [UInt8], String)] = [
            (Self.envelope("http://127.0.0.1:1"), Self.message, "smtp:// or smtps://"),
            (Self.envelope("smtps://127.0.0.1:1", security: .starttls), Self.message, "implicit TLS"),
            (Self.envelope(url, security: .implicit), Self.message, "smtps://"),
            (Self.envelope(url), Array("Subject: x\n\nbare LF\n".utf8), "bare LF"),
            (Self.envelope(url), Array("Subject: x\r\n\r\nbare CR\rx\r\n".utf8), "bare CR"),
            (Self.envelope(url), [], "empty"),
            (SMTPEnvelope(url: url, security: .none, from: "a@b.c", recipients: []), Self.message, "at least one recipient"),
            (SMTPEnvelope(url: url, security: .none, from: "a@b.c", recipients: ["x@y.z>\r\nDATA"]), Self.message, "bare address"),
            (SMTPEnvelope(url: url, security: .none, from: "no-at-sign", recipients: ["x@y.z"]), Self.message, "not an address"),
            (SMTPEnvelope(url: url, security: .none, username: "u", from: "a@b.c", recipients: ["x@y.z"]), Self.message, "both"),
        ]
        for (envelope, message, words) in cases {
            let error = await #expect(throws: TransportError.self) { try await client.sendMail(envelope, message: message) }
            #expect(error?.kind == .invalidRequest)
            #expect(error?.message.contains(words) == true, "\(String(describing: error)) should say \(words)")
        }
        await client.shutdown()
    }

    @Test("the envelope's description never shows the password")
    func redaction() {
        let envelope = SMTPEnvelope(
            url: "smtp://mail.example.com:587", username: "bridge", password: "hunter2", from: "a@b.c", recipients: ["x@y.z"])
        #expect(!envelope.description.contains("hunter2"))
        #expect(envelope.description.contains("bridge") && envelope.description.contains("<redacted>"))
    }
}
