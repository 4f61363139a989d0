public import SinkAPI
public import BridgeTemplates
import Foundation

extension SMTPSink {
    /// The sink's YAML keys (see ``SMTPSink``), checked when the configuration is loaded: every
    /// problem is a config error at the key or value concerned.
    public struct Configuration: Decodable, Sendable {
        /// `smtp://host[:port]` or `smtps://host[:port]`.
        public var url: String
        public var security: SMTPEnvelope.Security
        public var tls: TLSOptions
        public var username: String?
        public var password: String?
        public var from: Mailbox
        public var to: [Mailbox]
        public var cc: [Mailbox]
        /// Envelope recipients only; never in a header.
        public var bcc: [Mailbox]
        public var subject: HeaderTemplate
        public var text: TextTemplate
        public var html: HTMLTemplate?
        public var timeout: Duration

        /// The `subject` when none is configured.
        public static let defaultSubject = "graph-bridge: {{subscription.name}} {{changeType}}{{lifecycleEvent}}"
        /// The `text` when none is configured.
        public static let defaultText = """
            Subscription: {{subscription.name}}
            Change: {{changeType}}{{lifecycleEvent}}
            Resource: {{resource}}
            Received: {{receivedAt}}
            Event: {{id}}
            {{#data.subject}}Subject: {{data.subject}}
            {{/data.subject}}
            """

        public init(
            url: String,
            security: SMTPEnvelope.Security = .starttls,
            tls: TLSOptions = .init(),
            username: String? = nil,
            password: String? = nil,
            from: Mailbox,
            to: [Mailbox],
            cc: [Mailbox] = [],
            bcc: [Mailbox] = [],
            subject: HeaderTemplate,
            text: TextTemplate,
            html: HTMLTemplate? = nil,
            timeout: Duration = .seconds(30)
        ) {
            self.url = url
            self.security = security
            self.tls = tls
            self.username = username
            self.password = password
            self.from = from
            self.to = to
            self.cc = cc
            self.bcc = bcc
            self.subject = subject
            self.text = text
            self.html = html
            self.timeout = timeout
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case url, tls, caFile, insecureSkipVerify, username, password, from, to, cc, bcc, subject, text, html, timeout
        }

        enum TLSMode: String, ConfigEnum {
            case starttls, implicit, none
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            // Ask for every key first: a key after one that fails to decode is still a known key,
            // not "unknown key" noise next to the real error.
            for key in CodingKeys.allCases { _ = container.contains(key) }
            url = try container.decode(SMTPURL.self, forKey: .url).url
            let implicitURL = url.lowercased().hasPrefix("smtps://")

            if container.contains(.tls) {
                let tlsDecoder = try container.superDecoder(forKey: .tls)
                let mode = try TLSMode(from: tlsDecoder)
                switch mode {
                case .implicit where !implicitURL:
                    throw tlsDecoder.configError(
                        "tls: implicit needs an smtps:// URL (implicit TLS, usually port 465); for port 587 use tls: starttls")
                case .starttls where implicitURL, .none where implicitURL:
                    throw tlsDecoder.configError(
                        "an smtps:// URL is implicit TLS: write tls: implicit (or leave tls out), or use smtp:// for \(mode.rawValue)")
                default:
                    break
                }
                security = SMTPEnvelope.Security(rawValue: mode.rawValue) ?? .starttls
            } else {
                security = implicitURL ? .implicit : .starttls
            }

            var tls = TLSOptions()
            if container.contains(.caFile) {
                let caDecoder = try container.superDecoder(forKey: .caFile)
                let path = try ConfigPath(from: caDecoder).path
                guard security != .none else {
                    throw caDecoder.configError("caFile has no effect with tls: none; remove it or use starttls or implicit")
                }
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    FileManager.default.isReadableFile(atPath: path)
                else {
                    throw caDecoder.configError("caFile \(path) is not a readable file (a PEM bundle of the CA certificates to trust)")
                }
                tls.caFile = path
            }
            if container.contains(.insecureSkipVerify) {
                let insecureDecoder = try container.superDecoder(forKey: .insecureSkipVerify)
                tls.insecureSkipVerify = try Bool(from: insecureDecoder)
                if tls.insecureSkipVerify, security == .none {
                    throw insecureDecoder.configError("insecureSkipVerify has no effect with tls: none; remove it")
                }
            }
            self.tls = tls

            username = try container.decodeIfPresent(String.self, forKey: .username)
            password = try container.decodeIfPresent(String.self, forKey: .password)
            if username != nil, password == nil {
                throw try container.superDecoder(forKey: .username).configError(
                    "username needs a password: add password: (e.g. password: ${SMTP_PASSWORD})")
            }
            if password != nil, username == nil {
                throw try container.superDecoder(forKey: .password).configError("password needs a username: add username:")
            }

            from = try container.decode(Mailbox.self, forKey: .from)
            to = try container.decode(MailboxList.self, forKey: .to).mailboxes
            if to.isEmpty {
                throw try container.superDecoder(forKey: .to).configError("to needs at least one recipient")
            }
            cc = try container.decodeIfPresent(MailboxList.self, forKey: .cc)?.mailboxes ?? []
            bcc = try container.decodeIfPresent(MailboxList.self, forKey: .bcc)?.mailboxes ?? []

            subject = try container.decodeIfPresent(HeaderTemplate.self, forKey: .subject) ?? HeaderTemplate(Self.defaultSubject)
            text = try container.decodeIfPresent(TextTemplate.self, forKey: .text) ?? TextTemplate(Self.defaultText)
            html = try container.decodeIfPresent(HTMLTemplate.self, forKey: .html)

            if container.contains(.timeout) {
                let timeoutDecoder = try container.superDecoder(forKey: .timeout)
                let value = try ConfigDuration(from: timeoutDecoder).duration
                guard value >= .seconds(1) else {
                    throw timeoutDecoder.configError("timeout must be at least 1s")
                }
                timeout = value
            } else {
                timeout = .seconds(30)
            }
        }
    }

    /// `url:`: `smtp://` or `smtps://`, a host, an optional port; no login in it.
    struct SMTPURL: Decodable {
        var url: String

        init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            let lowered = text.lowercased()
            guard let scheme = ["smtp://", "smtps://"].first(where: { lowered.hasPrefix($0) }) else {
                throw decoder.configError(
                    "url must start with smtp:// (STARTTLS or plain, e.g. smtp://smtp.example.com:587) or smtps:// (implicit TLS, e.g. smtps://smtp.example.com:465)"
                )
            }
            let rest = text.dropFirst(scheme.count)
            let authority = rest.prefix { $0 != "/" }
            guard !authority.contains("@") else {
                throw decoder.configError("put the login in username: and password:, not in the url")
            }
            guard !text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) else {
                throw decoder.configError("url must not contain spaces or control characters")
            }
            let host = authority.hasPrefix("[") ? authority.prefix { $0 != "]" } : authority.prefix { $0 != ":" }
            guard !host.isEmpty, host != "[" else {
                throw decoder.configError("url has no host (e.g. smtp://smtp.example.com:587)")
            }
            if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
                let port = authority[authority.index(after: colon)...]
                guard let number = Int(port), (1...65535).contains(number) else {
                    throw decoder.configError("the port in url must be a number from 1 to 65535")
                }
            }
            url = text
        }
    }

    /// `to:`, `cc:`, `bcc:`: a list of mailboxes, or one mailbox as a plain string.
    struct MailboxList: Decodable {
        var mailboxes: [Mailbox]

        init(from decoder: any Decoder) throws {
            if let node = decoder.configNode, node.items == nil {
                mailboxes = [try Mailbox(from: decoder)]
            } else {
                mailboxes = try [Mailbox](from: decoder)
            }
        }
    }
}

extension Mailbox: Decodable {
    /// Reads a mailbox from a string (see ``init(parsing:)``); a bad one is a config error at it.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            self = try Mailbox(parsing: text)
        } catch {
            let hint = text.filter({ $0 == "@" }).count > 1 ? " (several recipients go in a list: [a@example.com, b@example.com])" : ""
            throw decoder.configError("\(error)\(hint)")
        }
    }
}
