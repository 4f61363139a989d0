public import SinkAPI
import BridgeTemplates
public import Foundation
import Logging

/// `type: smtp`: sends each event as an e-mail through an SMTP server (libcurl, on the bridge's
/// shared transfer thread).
///
/// The message is RFC 5322 with a MIME body: `text/plain`, or `multipart/alternative` (text, then
/// HTML) when `html` is set; see ``MailMessage``. Every delivery attempt is a new SMTP session
/// and a new `Message-ID`.
///
/// Outcomes: accepted → delivered. A 4xx reply, a connection failure or a timeout → retried. A
/// 5xx reply (a refused recipient, sender or message; a failed login) → dead letter at once. A
/// TLS failure (no STARTTLS offered with `tls: starttls`, a certificate that doesn't verify) →
/// dead letter at once: it needs a configuration change, then `graph-bridge dead-letters retry`.
///
/// ## Configuration keys
/// - `url` (required): `smtp://host[:port]` (STARTTLS or plain; port 25 by default, submission
///   is 587) or `smtps://host[:port]` (implicit TLS, usually 465). A path sets the EHLO name
///   (`smtp://smtp.example.com:587/bridge.example.com`); the default is `localhost`.
/// - `tls`: `starttls` (default for smtp://: the send fails unless the server upgrades with
///   STARTTLS; nothing is sent in the clear), `implicit` (needs smtps://, and the default for it),
///   or `none` (plain text, only for a trusted relay).
/// - `caFile`: PEM bundle of the CAs to trust instead of the system store (private relays);
///   relative to the config file's folder.
/// - `insecureSkipVerify`: `true` to skip certificate verification; logged as a warning at start.
///   Default `false`.
/// - `username`, `password`: SMTP AUTH login (both or neither); the password is never logged.
/// - `from` (required): the sender mailbox, `Graph Bridge <bridge@example.com>` or
///   `bridge@example.com`; its address is also the envelope sender.
/// - `to` (required): a list of mailboxes (or one as a string); `cc`: the same, optional.
/// - `bcc`: mailboxes that get the message without appearing in any header.
/// - `subject`: a header template; default `graph-bridge: {{subscription.name}} {{changeType}}{{lifecycleEvent}}`.
/// - `text`: the text/plain template; default: a summary of the event.
/// - `html`: an HTML template (values HTML-escaped); adds a text/html alternative.
/// - `timeout`: limit for one whole send (connect, TLS, login, upload); default `30s`.
public struct SMTPSink: Sink {
    public static let typeName = "smtp"

    let name: String
    let configuration: Configuration
    let envelope: SMTPEnvelope
    let client: any OutgoingTransport
    let logger: Logger

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.name = name
        self.configuration = configuration
        self.client = context.transport
        self.logger = context.logger
        envelope = SMTPEnvelope(
            url: configuration.url,
            security: configuration.security,
            tls: configuration.tls,
            username: configuration.username,
            password: configuration.password,
            from: configuration.from.address,
            recipients: Self.envelopeRecipients(configuration),
            timeout: configuration.timeout,
            connectTimeout: min(configuration.timeout, .seconds(10))
        )
        if configuration.tls.insecureSkipVerify {
            logger.warning(
                "TLS certificate verification is OFF for this smtp sink (insecureSkipVerify: true): anyone on the path can read the mail and the login",
                metadata: ["bridge.smtp.url": "\(configuration.url)"])
        }
        if configuration.security == .none {
            let login = configuration.username == nil ? "" : " and the SMTP password"
            logger.warning(
                "this smtp sink sends mail without TLS (tls: none): the message\(login) travel in the clear",
                metadata: ["bridge.smtp.url": "\(configuration.url)"])
        }
    }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        let message = makeMessage(for: event)
        do {
            let result = try await client.sendMail(envelope, message: message.rendered())
            logger.debug(
                "mail accepted",
                metadata: [
                    "bridge.event": "\(event.id)", "bridge.smtp.messageID": "\(message.messageID)",
                    "bridge.smtp.reply": "\(result.reply)",
                ])
        } catch let error as TransportError {
            throw Self.sinkError(for: error)
        }
    }

    /// The message for `event`: templates rendered, a fresh `Message-ID`.
    public func makeMessage(for event: BridgeEvent, date: Date = Date()) -> MailMessage {
        MailMessage(
            from: configuration.from,
            to: configuration.to,
            cc: configuration.cc,
            subject: configuration.subject.render(event),
            text: configuration.text.render(event),
            html: configuration.html?.render(event),
            eventID: event.id,
            date: date
        )
    }

    /// To, Cc and Bcc addresses in that order, each once (compared case-insensitively).
    static func envelopeRecipients(_ configuration: Configuration) -> [String] {
        var seen = Set<String>()
        return (configuration.to + configuration.cc + configuration.bcc).map(\.address).filter {
            seen.insert($0.lowercased()).inserted
        }
    }

    /// How a failed send is retried: 4xx replies and network trouble are retried; 5xx replies,
    /// TLS failures and refused input are permanent.
    static func sinkError(for error: TransportError) -> SinkError {
        switch error.kind {
        case .smtpRejected:
            let code = error.smtpReplyCode.map(String.init) ?? "?"
            if error.isTransient { return .retryable("SMTP \(code), temporary: \(error.message)") }
            return .permanent("SMTP \(code): \(error.message)")
        case .tls:
            return .permanent(
                "TLS failed (\(error.message)); check tls:, caFile: and that the server offers STARTTLS, then retry the dead letters")
        case .invalidRequest:
            return .permanent("the mail can't be sent as configured: \(error.message)")
        case .couldNotResolve, .couldNotConnect, .timedOut, .sendFailed, .receiveFailed, .tooLarge, .shutdown, .other:
            return .retryable("SMTP send failed: \(error.message)")
        }
    }
}
