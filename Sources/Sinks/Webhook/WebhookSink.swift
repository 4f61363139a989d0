public import SinkAPI
import BridgeTemplates
import Foundation
import Logging

/// `type: webhook`: POSTs each event to an HTTP(S) endpoint: the event itself, a chat service's
/// message payload, or a custom JSON body, optionally signed the Standard Webhooks way.
///
/// Every request carries `Content-Type: application/json`, `webhook-id` (the event id, the same
/// on every retry, for the receiver to deduplicate on) and `webhook-timestamp` (unix seconds of
/// this attempt). A 2xx answer is success; 408, 429, 5xx and network failures are retried
/// (honouring `Retry-After`); any other status is permanent: the delivery becomes a dead letter
/// at once. Redirects are not followed.
///
/// ## Configuration keys
/// - `url` (required): the endpoint, `http://` or `https://`. Never logged or shown in errors
///   beyond its scheme and host (chat webhook URLs are secrets).
/// - `method`: the HTTP method. Default `POST`.
/// - `headers`: a mapping of extra header names to values (`${VAR}` allowed, e.g.
///   `Authorization: "Bearer ${TOKEN}"`). `Content-Type` may be overridden; `Host`,
///   `Content-Length`, `Transfer-Encoding`, `Connection`, `Expect` and the `webhook-*` headers may not.
/// - `timeout`: limit for the whole request (connect, send, answer). Default `10s`.
/// - `format`: `json` (default: the event, exactly as the file sink writes it), `slack`,
///   `teams` (Workflows, Adaptive Card), `discord`, `googlechat` or `mattermost`.
/// - `text`: a text template for the chat formats. Default:
///   `[inbox] created: Subject (from Name, address)` for changes (the resource instead of the
///   subject when there is no `data.subject`), `graph-bridge: lifecycle event missed for
///   subscription inbox` for lifecycle events. Only with a chat format.
/// - `body`: a JSON template: the whole request body, instead of `format`/`text` (exclusive with
///   both). Values inside `"..."` are JSON-escaped; `{{#json}}...{{/json}}` makes a JSON string.
/// - `secret`: signs each request (Standard Webhooks): `webhook-signature: v1,<base64
///   HMAC-SHA256 of "id.timestamp.body">`. `whsec_<base64>` uses the decoded bytes as the key,
///   any other value its UTF-8 bytes. Never logged.
/// - `caFile`: a PEM bundle to trust instead of the system store (private CAs).
/// - `insecureSkipVerify`: `true` turns certificate verification off (logged as a warning at
///   start). Default `false`.
public struct WebhookSink: Sink {
    public static let typeName = "webhook"
    public static let defaultConcurrency = 4

    /// What the request body is.
    public enum Format: String, Sendable, CaseIterable, ConfigEnum {
        case json, slack, teams, discord, googlechat, mattermost

        /// The chat formats, which send ``Configuration/text``.
        public var isChat: Bool { self != .json }
    }

    /// Discord refuses `content` longer than this many characters.
    public static let discordContentLimit = 2000

    let configuration: Configuration
    let client: any OutgoingTransport
    let logger: Logger
    let tls: TLSOptions?
    let text: TextTemplate
    /// `scheme://host[:port]` of the URL: what messages may show.
    let target: String

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.configuration = configuration
        self.client = context.transport
        self.logger = context.logger
        self.target = Self.displayTarget(configuration.url)
        var text = configuration.text ?? Self.defaultText
        switch configuration.format {
        case .slack:
            // Slack reads <...> in text as links and mentions (<!channel>): values must not form one.
            text = text.escapingValues(.slack)
        case .googlechat:
            // <users/all>, <url|text> and [text](url): values must not form one.
            text = text.escapingValues(.googleChat)
        case .mattermost:
            // @channel, @here, @all, [text](url), ![image](url), <!channel>: values must not form one.
            text = text.escapingValues(.mattermost)
        case .json, .teams, .discord:
            // Discord: allowed_mentions in the payload. Teams cards do not ping from text.
            break
        }
        self.text = text
        if configuration.caFile != nil || configuration.insecureSkipVerify {
            tls = TLSOptions(caFile: configuration.caFile, insecureSkipVerify: configuration.insecureSkipVerify)
        } else {
            tls = nil
        }
        if configuration.insecureSkipVerify {
            logger.warning(
                "TLS certificate verification is OFF for this webhook sink (insecureSkipVerify: true): anyone on the path can read and alter its requests",
                metadata: ["bridge.webhook.target": "\(target)"])
        }
    }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        let body = try payload(for: event)
        let timestamp = Int64(Date().timeIntervalSince1970)
        var headers = configuration.requestHeaders
        headers.append(("webhook-id", event.id))
        headers.append(("webhook-timestamp", String(timestamp)))
        if let secret = configuration.secret {
            headers.append(("webhook-signature", secret.signature(id: event.id, timestamp: timestamp, body: body)))
        }
        let request = HTTPRequest(
            method: configuration.method,
            url: configuration.url,
            headers: headers,
            body: body,
            timeout: configuration.timeout,
            connectTimeout: min(configuration.timeout, .seconds(10))
        )
        let response: HTTPResponse
        do {
            response = try await client.execute(request, tls: tls)
        } catch let error as TransportError {
            throw Self.failure(error, target: target)
        }
        if let failure = Self.failure(status: response.status, retryAfter: response.retryAfter, body: response.body, target: target) {
            throw failure
        }
    }
}
