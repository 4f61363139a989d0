import Foundation
import Testing

@testable import SMTPSink

/// The message builder without any I/O: quoted-printable, encoded-words, folding, dates, ids.
@Suite("mail message builder")
struct MailMessageTests {
    // MARK: Independent decoders (RFC 2045 6.7 and RFC 2047 Q), small enough to trust by reading

    /// Decodes quoted-printable: soft breaks removed, `=XX` to bytes, CRLF kept.
    static func decodeQP(_ encoded: String) -> String {
        var bytes: [UInt8] = []
        let input = Array(encoded.utf8)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "=") {
                if index + 2 < input.count, input[index + 1] == 0x0D, input[index + 2] == 0x0A {
                    index += 3
                    continue
                }
                let hex = String(decoding: input[(index + 1)...(index + 2)], as: UTF8.self)
                bytes.append(UInt8(hex, radix: 16)!)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Decodes a header value made only of `=?UTF-8?Q?...?=` words separated by folding white space.
    static func decodeEncodedWords(_ value: String) -> String? {
        var bytes: [UInt8] = []
        // Unfold first: in Swift "\r\n" is one Character, so split after removing it.
        for word in value.replacingOccurrences(of: "\r\n", with: "").split(separator: " ") {
            guard word.hasPrefix("=?UTF-8?Q?"), word.hasSuffix("?=") else { return nil }
            let payload = Array(word.dropFirst(10).dropLast(2).utf8)
            var wordBytes: [UInt8] = []
            var index = 0
            while index < payload.count {
                switch payload[index] {
                case UInt8(ascii: "_"):
                    wordBytes.append(0x20)
                    index += 1
                case UInt8(ascii: "="):
                    wordBytes.append(UInt8(String(decoding: payload[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)!)
                    index += 3
                default:
                    wordBytes.append(payload[index])
                    index += 1
                }
            }
            // RFC 2047 section 5: every encoded-word holds whole characters.
            guard String(validating: wordBytes, as: UTF8.self) != nil else { return nil }
            bytes += wordBytes
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func lines(_ text: String) -> [Substring] {
        text.split(separator: "\r\n", omittingEmptySubsequences: false)
    }

    // MARK: Quoted-printable

    @Test(
        "quoted-printable round-trips, keeps lines within 76, encodes line-final spaces, '=' and leading dots",
        arguments: [
            "plain ASCII",
            String(repeating: "abcdefghij", count: 30),
            "trailing spaces   \nand tabs\t\nend",
            "a = b, 100% =?not?=",
            ".\n..\n.leading dot\n" + String(repeating: "x", count: 75) + ".after a soft break",
            "Grüße aus Köln — 😀🇩🇪 " + String(repeating: "é", count: 60),
            "windows\r\nline\rends\n",
            String(repeating: " ", count: 100),
            "",
        ])
    func quotedPrintable(text: String) {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        let plain = QuotedPrintable.encode(text)
        // Ending in a soft break, the final CRLF a message needs decodes to nothing.
        let soft = QuotedPrintable.encode(text, endsWithSoftBreak: true)
        #expect(soft.hasSuffix("="))
        #expect(Self.decodeQP(plain).replacingOccurrences(of: "\r\n", with: "\n") == normalized)
        #expect(Self.decodeQP(soft + "\r\n").replacingOccurrences(of: "\r\n", with: "\n") == normalized)
        for line in Self.lines(plain) + Self.lines(soft) {
            #expect(line.utf8.count <= 76, "\(line)")
            #expect(!line.hasPrefix("."), "a line starts with a dot: \(line)")
            #expect(line.last != " " && line.last != "\t", "trailing white space: \(line)")
            #expect(line.utf8.allSatisfy { (0x20...0x7E).contains($0) || $0 == 0x09 }, "not printable ASCII: \(line)")
            #expect(!line.contains("\n") && !line.contains("\r"))
        }
    }

    @Test("a long line breaks softly at exactly 76 characters, never inside =XX")
    func softBreaks() {
        let encoded = QuotedPrintable.encode(String(repeating: "a", count: 74) + "ééé")
        let lines = Self.lines(encoded)
        #expect(lines[0] == Substring(String(repeating: "a", count: 74) + "="))
        #expect(lines[1] == "=C3=A9=C3=A9=C3=A9")
        #expect(QuotedPrintable.encode(String(repeating: "b", count: 76)) == String(repeating: "b", count: 76))
        #expect(QuotedPrintable.encode(String(repeating: "b", count: 76), endsWithSoftBreak: true) == String(repeating: "b", count: 75) + "=\r\nb=")
        #expect(QuotedPrintable.encode("trailing ", endsWithSoftBreak: true) == "trailing =")
    }

    // MARK: Headers

    @Test(
        "a non-ASCII subject becomes UTF-8 encoded-words: whole characters, words ≤ 75, lines ≤ 78, decodes exactly",
        arguments: [
            "Neue E-Mail von „Jürgen“: \"Quartalszahlen\" 📈 — bitte prüfen",
            String(repeating: "日本語のテキスト", count: 12),
            "👨‍👩‍👧‍👦 family " + String(repeating: "🏳️‍🌈", count: 10),
            "ASCII until the very end é",
        ])
    func encodedSubject(subject: String) throws {
        let field = HeaderEncoding.unstructured("Subject", subject)
        #expect(field.hasPrefix("Subject: =?UTF-8?Q?"))
        for line in Self.lines(field) {
            #expect(line.utf8.count <= 78, "\(line)")
        }
        let value = String(field.dropFirst("Subject: ".count))
        for word in value.replacingOccurrences(of: "\r\n", with: "").split(separator: " ") {
            #expect(word.utf8.count <= 75)
        }
        #expect(try #require(Self.decodeEncodedWords(value)) == subject)
    }

    @Test("printable ASCII stays readable and folds at spaces; '=?' and odd spacing are encoded")
    func asciiSubject() {
        #expect(HeaderEncoding.unstructured("Subject", "New mail: Quarterly numbers") == "Subject: New mail: Quarterly numbers")
        let long = (1...30).map { "word\($0)" }.joined(separator: " ")
        let folded = HeaderEncoding.unstructured("Subject", long)
        #expect(Self.lines(folded).count > 1)
        #expect(Self.lines(folded).allSatisfy { $0.utf8.count <= 78 })
        #expect(folded.replacingOccurrences(of: "\r\n", with: "") == "Subject: " + long)
        for tricky in ["=?UTF-8?Q?x?=", " leading", "double  space", String(repeating: "x", count: 90)] {
            let field = HeaderEncoding.unstructured("Subject", tricky)
            #expect(Self.decodeEncodedWords(String(field.dropFirst("Subject: ".count))) == tricky)
        }
    }

    @Test("line breaks and control characters can't start a new header")
    func headerInjection() {
        let field = HeaderEncoding.unstructured("Subject", "hello\r\nBcc: victim@example.com\u{7}")
        #expect(!field.contains("\r\nBcc"))
        #expect(Self.lines(field).dropFirst().allSatisfy { $0.hasPrefix(" ") }, "every further line is a continuation")
        #expect(Self.decodeEncodedWords(String(field.dropFirst(9))) == "hello Bcc: victim@example.com ")
    }

    @Test("address headers: atoms, quoted names, encoded names, commas, folding")
    func addressHeaders() throws {
        let boxes = [
            Mailbox(displayName: "Graph Bridge", address: "bridge@example.com"),
            Mailbox(displayName: "Doe, Jane \"JD\"", address: "jane@example.com"),
            Mailbox(displayName: "Jürgen Müller", address: "j@example.com"),
            Mailbox(address: "ops@example.com"),
        ]
        let field = HeaderEncoding.addressList("To", boxes)
        #expect(Self.lines(field).allSatisfy { $0.utf8.count <= 78 })
        let unfolded = field.replacingOccurrences(of: "\r\n", with: "")
        #expect(unfolded.hasPrefix("To: Graph Bridge <bridge@example.com>, \"Doe, Jane \\\"JD\\\"\" <jane@example.com>, =?UTF-8?Q?"))
        #expect(unfolded.hasSuffix("<j@example.com>, ops@example.com"))
    }

    // MARK: The whole message

    static func sample(html: String? = "<p>Hello</p>") -> MailMessage {
        MailMessage(
            from: Mailbox(displayName: "Graph Bridge", address: "bridge@example.com"),
            to: [Mailbox(address: "ops@example.com")],
            cc: [Mailbox(displayName: "Audit", address: "audit@example.com")],
            subject: "Hello",
            text: "Hello\n.\nworld",
            html: html,
            eventID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            date: Date(timeIntervalSince1970: 1_796_000_000),
            boundary: "=_graph-bridge_test"
        )
    }

    @Test("headers in order, CRLF everywhere, multipart/alternative text then html")
    func wholeMessage() throws {
        let message = Self.sample()
        let text = String(decoding: message.rendered(), as: UTF8.self)
        let (head, body) = try #require(text.range(of: "\r\n\r\n").map { (text[..<$0.lowerBound], text[$0.upperBound...]) })
        let names = Self.lines(String(head)).filter { !$0.hasPrefix(" ") }.map { $0.prefix { $0 != ":" } }
        #expect(
            names == [
                "Date", "From", "To", "Cc", "Subject", "Message-ID", "X-Graph-Bridge-Event", "Auto-Submitted", "MIME-Version",
                "Content-Type",
            ])
        #expect(head.contains("Date: Mon, 30 Nov 2026 00:53:20 +0000\r\n"))
        #expect(head.contains("From: Graph Bridge <bridge@example.com>\r\n"))
        #expect(head.contains("X-Graph-Bridge-Event: 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\r\n"))
        #expect(head.contains("Content-Type: multipart/alternative;\r\n boundary=\"=_graph-bridge_test\""))
        #expect(text.hasSuffix("\r\n--=_graph-bridge_test--\r\n"))
        let plain = try #require(body.range(of: "Content-Type: text/plain; charset=UTF-8"))
        let html = try #require(body.range(of: "Content-Type: text/html; charset=UTF-8"))
        #expect(plain.lowerBound < html.lowerBound)
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "no bare LF")
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\r"), "no bare CR")
        #expect(body.contains("Hello\r\n=2E\r\nworld"))

        let single = String(decoding: Self.sample(html: nil).rendered(), as: UTF8.self)
        #expect(
            single.hasSuffix(
                "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello\r\n=2E\r\nworld=\r\n"))
        #expect(!single.contains("multipart"))
    }

    @Test("Message-ID: the event id, a random part and the sender's domain; unique per message")
    func messageID() {
        let first = MailMessage.makeMessageID(eventID: "0190a1b2-c3d4", domain: "Example.COM")
        let second = MailMessage.makeMessageID(eventID: "0190a1b2-c3d4", domain: "Example.COM")
        #expect(first != second)
        #expect(first.hasPrefix("<0190a1b2-c3d4.") && first.hasSuffix("@example.com>"))
        #expect(first.count == "<0190a1b2-c3d4.".count + 8 + "@example.com>".count)
        #expect(MailMessage.makeMessageID(eventID: "a b<c>@d", domain: "x.org").hasPrefix("<abcd."))

        // A UUID event id and a typical domain fit on one line; a long domain folds before the id.
        var message = Self.sample()
        message.eventID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        message.messageID = MailMessage.makeMessageID(eventID: message.eventID, domain: "mail.example.com")
        let short = String(decoding: message.rendered(), as: UTF8.self)
        #expect(short.contains("\r\nMessage-ID: \(message.messageID)\r\n"))
        message.messageID = MailMessage.makeMessageID(eventID: message.eventID, domain: "alerts.contoso-corp.com")
        let long = String(decoding: message.rendered(), as: UTF8.self)
        #expect(long.contains("\r\nMessage-ID:\r\n \(message.messageID)\r\n"))
        #expect(Self.lines(long).allSatisfy { $0.utf8.count <= 78 })
    }

    @Test(
        "Date is RFC 5322 in UTC",
        arguments: [
            (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (1_796_000_000.9, "Mon, 30 Nov 2026 00:53:20 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (-86_400, "Wed, 31 Dec 1969 00:00:00 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ])
    func date(seconds: Double, expected: String) {
        #expect(MailMessage.formatDate(Date(timeIntervalSince1970: seconds)) == expected)
    }

    // MARK: Mailboxes

    @Test("mailboxes parse from the forms people write")
    func mailboxParsing() throws {
        #expect(try Mailbox(parsing: "Graph Bridge <bridge@example.com>") == Mailbox(displayName: "Graph Bridge", address: "bridge@example.com"))
        #expect(try Mailbox(parsing: " ops@example.com ") == Mailbox(address: "ops@example.com"))
        #expect(try Mailbox(parsing: "<ops@example.com>") == Mailbox(address: "ops@example.com"))
        #expect(
            try Mailbox(parsing: "\"Doe, Jane \\\"JD\\\"\" <jane@example.com>")
                == Mailbox(displayName: "Doe, Jane \"JD\"", address: "jane@example.com"))
        #expect(try Mailbox(parsing: "Jürgen <j@[192.0.2.1]>") == Mailbox(displayName: "Jürgen", address: "j@[192.0.2.1]"))
        for bad in ["", "nobody", "a@", "@b.c", "a b@c.d", "Doe, Jane <j@x.y>", "x <a@b.c", "a@b..c", "a@-b.c", "jü@x.y", "a@b.c, d@e.f"] {
            #expect(throws: Mailbox.ParseError.self, "\(bad)") { try Mailbox(parsing: bad) }
        }
    }
}
