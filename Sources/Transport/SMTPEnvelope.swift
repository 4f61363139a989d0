/// One SMTP send for ``OutgoingTransport/sendMail(_:message:)``: the server, how the connection is
/// secured, the login, and the envelope (`MAIL FROM`, `RCPT TO`).
///
/// The envelope is not the message: recipients here receive the message whether or not its
/// headers name them (that is how Bcc works), and the message's `From` may differ from ``from``.
///
/// ```swift
/// let envelope = SMTPEnvelope(
///     url: "smtp://smtp.example.com:587", security: .starttls,
///     username: "bridge@example.com", password: secret,
///     from: "bridge@example.com", recipients: ["ops@example.com"])
/// let result = try await client.sendMail(envelope, message: bytes)
/// ```
public struct SMTPEnvelope: Sendable, CustomStringConvertible {
    /// How the connection to the server is protected.
    public enum Security: String, Sendable, Hashable, CaseIterable {
        /// `smtp://`, upgraded with `STARTTLS` before anything else is sent. A server that does
        /// not offer STARTTLS, or refuses it, fails the send (``TransportError/Kind/tls``, or
        /// ``TransportError/Kind/smtpRejected`` when it answered STARTTLS with an error reply);
        /// nothing is ever sent in the clear.
        case starttls
        /// `smtps://`: TLS from the first byte (port 465 by default).
        case implicit
        /// `smtp://` without TLS. Login and message travel in the clear: only for a relay on a
        /// trusted network, and only when configured explicitly.
        case none
    }

    /// `smtp://host[:port]` (`starttls`, `none`; port 25 by default) or `smtps://host[:port]`
    /// (`implicit`). A path names the `EHLO` domain (`smtp://host:587/client.example.com`);
    /// without one libcurl greets with `localhost`.
    public var url: String
    public var security: Security
    /// Certificate verification (`starttls` and `implicit`).
    public var tls: TLSOptions
    /// `AUTH` login (libcurl picks the strongest mechanism the server offers among those it
    /// knows). Give both or neither.
    public var username: String?
    public var password: String?
    /// The envelope sender (`MAIL FROM`), a bare address: `bridge@example.com`.
    public var from: String
    /// The envelope recipients (`RCPT TO`), bare addresses; at least one. Any refused
    /// recipient fails the whole send.
    public var recipients: [String]
    /// Limit for the whole send: connect, TLS, login, envelope, upload, final reply. Default 30 s.
    public var timeout: Duration
    /// Limit for the connect phase, TLS handshake included. Default 10 s.
    public var connectTimeout: Duration

    public init(
        url: String,
        security: Security = .starttls,
        tls: TLSOptions = .init(),
        username: String? = nil,
        password: String? = nil,
        from: String,
        recipients: [String],
        timeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(10)
    ) {
        self.url = url
        self.security = security
        self.tls = tls
        self.username = username
        self.password = password
        self.from = from
        self.recipients = recipients
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }

    /// Everything but the password.
    public var description: String {
        let login = username.map { " username=\($0) password=\(password == nil ? "none" : "<redacted>")" } ?? ""
        return "SMTPEnvelope(\(url) security=\(security.rawValue)\(login) from=\(from) recipients=\(recipients))"
    }
}

extension SMTPEnvelope {
    /// Rejects what would reach the SMTP dialogue verbatim (command injection) or what libcurl
    /// would refuse later with a less helpful message.
    package func validate() throws(TransportError) {
        let lowered = url.lowercased()
        let implicit = lowered.hasPrefix("smtps://")
        guard implicit || lowered.hasPrefix("smtp://") else {
            throw .invalidRequest("SMTP URL must start with smtp:// or smtps://")
        }
        switch security {
        case .implicit where !implicit:
            throw .invalidRequest("implicit TLS needs an smtps:// URL")
        case .starttls where implicit, .none where implicit:
            throw .invalidRequest("an smtps:// URL is implicit TLS; \(security.rawValue) needs smtp://")
        default:
            break
        }
        guard !url.utf8.contains(where: Self.isForbidden) else {
            throw .invalidRequest("SMTP URL contains CR, LF or NUL")
        }
        if (username == nil) != (password == nil) {
            throw .invalidRequest("SMTP login needs both a username and a password")
        }
        for (field, value) in [("username", username), ("password", password)] {
            if let value, value.utf8.contains(where: Self.isForbidden) {
                throw .invalidRequest("SMTP \(field) contains CR, LF or NUL")
            }
        }
        try Self.checkAddress(from, role: "sender")
        guard !recipients.isEmpty else { throw .invalidRequest("an SMTP send needs at least one recipient") }
        for recipient in recipients { try Self.checkAddress(recipient, role: "recipient") }
    }

    /// A message must be non-empty and use CRLF line ends only: libcurl's dot-stuffing looks
    /// for `CRLF.`, so a bare LF could let a line `.` end the message early.
    package static func validateMessage(_ message: [UInt8]) throws(TransportError) {
        guard !message.isEmpty else { throw .invalidRequest("the SMTP message is empty") }
        var previous: UInt8 = 0
        for (index, byte) in message.enumerated() {
            if byte == 0x0A, previous != 0x0D {
                throw .invalidRequest("the SMTP message has a bare LF at byte \(index); lines must end in CRLF")
            }
            if previous == 0x0D, byte != 0x0A {
                throw .invalidRequest("the SMTP message has a bare CR at byte \(index - 1); lines must end in CRLF")
            }
            if byte == 0x00 { throw .invalidRequest("the SMTP message contains a NUL byte at \(index)") }
            previous = byte
        }
        if previous == 0x0D { throw .invalidRequest("the SMTP message ends in a bare CR") }
    }

    private static func checkAddress(_ address: String, role: String) throws(TransportError) {
        guard !address.isEmpty, address.contains("@") else {
            throw .invalidRequest("SMTP \(role) \"\(address)\" is not an address like name@example.com")
        }
        let forbidden: (UInt8) -> Bool = { byte in
            isForbidden(byte) || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == 0x20 || byte == 0x09
        }
        guard !address.utf8.contains(where: forbidden) else {
            throw .invalidRequest("SMTP \(role) \"\(address)\" must be a bare address (no <>, spaces or line breaks)")
        }
    }

    private static func isForbidden(_ byte: UInt8) -> Bool {
        byte == 0x0D || byte == 0x0A || byte == 0x00
    }
}
