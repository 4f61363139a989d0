import SinkAPI
public import BridgeTemplates
import Foundation

extension WebhookSink {
    /// The sink's YAML keys (see the type's documentation).
    public struct Configuration: Decodable, Sendable {
        public var url: String
        public var method: String
        /// Extra request headers in file order.
        public var headers: [(name: String, value: String)]
        public var timeout: Duration
        public var format: Format
        public var text: TextTemplate?
        public var body: JSONTemplate?
        public var secret: WebhookSecret?
        public var caFile: String?
        public var insecureSkipVerify: Bool

        enum CodingKeys: String, CodingKey {
            case url, method, headers, timeout, format, text, body, secret, caFile, insecureSkipVerify
        }

        /// Headers that the sink or libcurl own.
        static let reservedHeaders: Set<String> = [
            "host", "content-length", "transfer-encoding", "connection", "expect", "webhook-id", "webhook-timestamp",
            "webhook-signature",
        ]

        public init(
            url: String,
            method: String = "POST",
            headers: [(name: String, value: String)] = [],
            timeout: Duration = .seconds(10),
            format: Format = .json,
            text: TextTemplate? = nil,
            body: JSONTemplate? = nil,
            secret: WebhookSecret? = nil,
            caFile: String? = nil,
            insecureSkipVerify: Bool = false
        ) {
            self.url = url
            self.method = method
            self.headers = headers
            self.timeout = timeout
            self.format = format
            self.text = text
            self.body = body
            self.secret = secret
            self.caFile = caFile
            self.insecureSkipVerify = insecureSkipVerify
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            url = try container.decode(WebhookURL.self, forKey: .url).url
            method = try container.decodeIfPresent(HTTPMethodName.self, forKey: .method)?.name ?? "POST"
            headers = try Self.decodeHeaders(container)
            timeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .timeout)?.duration ?? .seconds(10)
            if timeout < .milliseconds(1) {
                throw try container.superDecoder(forKey: .timeout).configError("timeout must be at least 1ms")
            }
            let format = try container.decodeIfPresent(Format.self, forKey: .format)
            text = try container.decodeIfPresent(TextTemplate.self, forKey: .text)
            body = try container.decodeIfPresent(JSONTemplate.self, forKey: .body)
            if body != nil, format != nil {
                throw try container.superDecoder(forKey: .body).configError(
                    "'body' and 'format' cannot be used together: body is the whole request body (remove format, or remove body and use text)"
                )
            }
            if body != nil, text != nil {
                throw try container.superDecoder(forKey: .text).configError(
                    "'text' is not used when 'body' is given (put the text into the body template)")
            }
            if text != nil, !(format ?? .json).isChat {
                throw try container.superDecoder(forKey: .text).configError(
                    "'text' needs a chat format: add format: slack, teams, discord, googlechat or mattermost (or use body: for a custom JSON body)"
                )
            }
            self.format = format ?? .json
            secret = try container.decodeIfPresent(WebhookSecret.self, forKey: .secret)
            caFile = try container.decodeIfPresent(ExistingFile.self, forKey: .caFile)?.path
            insecureSkipVerify = try container.decodeIfPresent(Bool.self, forKey: .insecureSkipVerify) ?? false
        }

        /// `headers:` in file order, each checked where it is written.
        static func decodeHeaders(_ container: KeyedDecodingContainer<CodingKeys>) throws -> [(name: String, value: String)] {
            guard container.contains(.headers) else { return [] }
            if try container.decodeNil(forKey: .headers) { return [] }
            let mapping = try container.nestedContainer(keyedBy: HeaderName.self, forKey: .headers)
            var headers: [(name: String, value: String)] = []
            for key in mapping.allKeys {
                let value = try mapping.decode(String.self, forKey: key)
                let name = key.stringValue
                var problem: String?
                if !HTTPRequest.isToken(name) {
                    problem = "header name '\(name)' is not a valid HTTP header name"
                } else if reservedHeaders.contains(name.lowercased()) {
                    problem = "header '\(name)' is set by the sink and cannot be configured"
                } else if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
                    problem = "the value of header '\(name)' contains a line break or NUL"
                }
                if let problem { throw try mapping.superDecoder(forKey: key).configError(problem) }
                headers.append((name, value))
            }
            return headers
        }

        /// The configured headers plus `Content-Type: application/json` unless configured.
        var requestHeaders: [(name: String, value: String)] {
            if headers.contains(where: { $0.name.lowercased() == "content-type" }) { return headers }
            return [("Content-Type", "application/json")] + headers
        }
    }

    struct HeaderName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// An absolute http(s) URL with a host. The value is not echoed in errors: it may hold a token.
    struct WebhookURL: Decodable {
        var url: String

        init(from decoder: any Decoder) throws {
            url = try decoder.singleValueContainer().decode(String.self)
            let lowered = url.lowercased()
            let scheme = ["http://", "https://"].first { lowered.hasPrefix($0) }
            guard let scheme else {
                throw decoder.configError("url must be an absolute http:// or https:// URL")
            }
            let host = url.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            guard !host.isEmpty, !host.hasPrefix(":"), !host.hasSuffix("@") else {
                throw decoder.configError("url has no host")
            }
            guard !url.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
            else {
                throw decoder.configError("url contains spaces or control characters (percent-encode them)")
            }
        }
    }

    /// An HTTP method token, upper-cased (`post` → `POST`).
    struct HTTPMethodName: Decodable {
        var name: String

        init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard HTTPRequest.isToken(text) else {
                throw decoder.configError("method must be an HTTP method such as POST or PUT")
            }
            name = text.uppercased()
        }
    }

    /// A path (relative to the config's folder) to a file that exists.
    struct ExistingFile: Decodable {
        var path: String

        init(from decoder: any Decoder) throws {
            path = try ConfigPath(from: decoder).path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw decoder.configError("caFile \(path) does not exist or is not a file")
            }
        }
    }
}
