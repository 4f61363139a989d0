public import Foundation
import SinkAPI

/// An e-mail as the smtp sink sends it: an RFC 5322 message with CRLF line ends and a MIME body,
/// `text/plain`, or `multipart/alternative` with `text/plain` first and `text/html` second,
/// each part UTF-8 quoted-printable.
///
/// Headers, in this order: `Date`, `From`, `To`, `Cc` (when any), `Subject` (RFC 2047
/// encoded-words when not plain ASCII), `Message-ID`, `X-Graph-Bridge-Event`,
/// `Auto-Submitted: auto-generated` (RFC 3834: auto-responders must not answer it),
/// `MIME-Version`, `Content-Type`, and `Content-Transfer-Encoding` for a single part. No header
/// line is longer than 78 characters. Bcc recipients belong to the envelope only and never
/// appear here.
public struct MailMessage: Sendable {
    public var from: Mailbox
    public var to: [Mailbox]
    public var cc: [Mailbox]
    public var subject: String
    public var text: String
    /// The HTML alternative; `nil` sends `text/plain` alone.
    public var html: String?
    /// The event id, for `X-Graph-Bridge-Event` and the `Message-ID`.
    public var eventID: String
    public var date: Date
    /// `<...@...>`, unique per message; see ``makeMessageID(eventID:domain:)``.
    public var messageID: String
    /// The multipart boundary; see ``makeBoundary()``.
    public var boundary: String

    public init(
        from: Mailbox,
        to: [Mailbox],
        cc: [Mailbox] = [],
        subject: String,
        text: String,
        html: String? = nil,
        eventID: String,
        date: Date = Date(),
        messageID: String? = nil,
        boundary: String? = nil
    ) {
        self.from = from
        self.to = to
        self.cc = cc
        self.subject = subject
        self.text = text
        self.html = html
        self.eventID = eventID
        self.date = date
        self.messageID = messageID ?? Self.makeMessageID(eventID: eventID, domain: from.domain)
        self.boundary = boundary ?? Self.makeBoundary()
    }

    /// The message as sent: headers, a blank line, the body; every line ends in CRLF.
    public func rendered() -> [UInt8] {
        var lines: [String] = [
            "Date: \(Self.formatDate(date))",
            HeaderEncoding.addressList("From", [from]),
            HeaderEncoding.addressList("To", to),
        ]
        if !cc.isEmpty { lines.append(HeaderEncoding.addressList("Cc", cc)) }
        lines += [
            HeaderEncoding.unstructured("Subject", subject),
            HeaderEncoding.field("Message-ID", pieces: [messageID], foldEarly: true),
            HeaderEncoding.unstructured("X-Graph-Bridge-Event", eventID),
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
        ]
        if let html {
            lines += [
                "Content-Type: multipart/alternative;",
                " boundary=\"\(boundary)\"",
                "",
                "--\(boundary)",
            ]
            // The CRLF before a boundary belongs to the boundary: the parts decode exactly as they are.
            lines += Self.part(subtype: "plain", text, endsWithSoftBreak: false)
            lines.append("--\(boundary)")
            lines += Self.part(subtype: "html", html, endsWithSoftBreak: false)
            lines.append("--\(boundary)--")
        } else {
            // The message's final CRLF would otherwise add a line break to the text.
            lines += Self.part(subtype: "plain", text, endsWithSoftBreak: true)
        }
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }

    /// A part's (or single-part message's) content headers, a blank line, and the encoded text.
    private static func part(subtype: String, _ text: String, endsWithSoftBreak: Bool) -> [String] {
        [
            "Content-Type: text/\(subtype); charset=UTF-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            QuotedPrintable.encode(text, endsWithSoftBreak: endsWithSoftBreak),
        ]
    }

    /// `<eventid.random@domain>`: the event id (letters, digits and `-` kept), 8 random hex
    /// digits (each attempt for the same event is a new message), and the sender's domain.
    /// With a domain up to 18 characters long the header stays on one line; a longer one
    /// folds before the id.
    public static func makeMessageID(eventID: String, domain: String) -> String {
        let kept = eventID.unicodeScalars.filter { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-"
        }
        let local = String(String.UnicodeScalarView(kept))
        let right = domain.isEmpty ? "graph-bridge.invalid" : domain.lowercased()
        return "<\(local.isEmpty ? "event" : local).\(randomHex(4))@\(right)>"
    }

    /// `=_graph-bridge_` and 24 random hex digits: `=_` can never occur in quoted-printable
    /// text, so the boundary can't collide with the content.
    public static func makeBoundary() -> String {
        "=_graph-bridge_\(randomHex(12))"
    }

    private static func randomHex(_ byteCount: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        var text = ""
        for _ in 0..<byteCount {
            let byte = generator.next() as UInt8
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }

    /// RFC 5322 `date-time` in UTC: `Sun, 29 Nov 2026 10:00:00 +0000`.
    public static func formatDate(_ date: Date) -> String {
        utcDayAndTime(Int64(date.timeIntervalSince1970.rounded(.down))) + " +0000"
    }
}
