public import SinkAPI
import BridgeTemplates
import Logging

extension WebhookSink {
    /// Used by the chat formats when the configuration has no `text`.
    static let defaultText: TextTemplate = {
        let source =
            "{{#lifecycleEvent}}graph-bridge: lifecycle event {{lifecycleEvent}} for subscription {{subscription.name}}{{/lifecycleEvent}}"
            + "{{^lifecycleEvent}}[{{subscription.name}}] {{changeType}}"
            + "{{#data.subject}}: {{data.subject}}{{/data.subject}}{{^data.subject}} {{resource}}{{/data.subject}}"
            // No <...> around the address: a value inside the template's own angle brackets could
            // complete a Slack or Google Chat <url|label> link that no value escaping can stop.
            + "{{#data.from.emailAddress}} (from {{name}}, {{address}}){{/data.from.emailAddress}}"
            + "{{/lifecycleEvent}}"
        do {
            return try TextTemplate(source)
        } catch {
            preconditionFailure("the webhook sink's default text template does not compile: \(error)")
        }
    }()

    /// The request body for `event`, as sent (and signed).
    ///
    /// - Throws: `SinkError.permanent` when a custom `body` does not render to JSON.
    public func payload(for event: BridgeEvent) throws(SinkError) -> [UInt8] {
        if let body = configuration.body {
            return try body.render(event).serialized()
        }
        switch configuration.format {
        case .json:
            return event.encoded()
        case .slack, .mattermost, .googlechat:
            return JSONValue.object(["text": .string(text.render(event))]).serialized()
        case .discord:
            let rendered = text.render(event)
            let content = Self.truncated(rendered, limit: Self.discordContentLimit)
            if content != rendered {
                logger.warning(
                    "message text truncated to Discord's \(Self.discordContentLimit) character limit",
                    metadata: ["bridge.event": "\(event.id)", "bridge.webhook.length": "\(rendered.unicodeScalars.count)"])
            }
            return JSONValue.object([
                "content": .string(content),
                // Text from mail must not ping @everyone, @here, users or roles.
                "allowed_mentions": .object(["parse": .array([])]),
            ]).serialized()
        case .teams:
            return Self.teamsMessage(text.render(event)).serialized()
        }
    }

    /// The Workflows ("Post to a channel when a webhook request is received") envelope: one
    /// Adaptive Card with one wrapping text block.
    static func teamsMessage(_ text: String) -> JSONValue {
        let card: JSONObject = [
            "$schema": .string("http://adaptivecards.io/schemas/adaptive-card.json"),
            "type": .string("AdaptiveCard"),
            "version": .string("1.4"),
            "body": .array([.object(["type": .string("TextBlock"), "text": .string(text), "wrap": .bool(true)])]),
            "msteams": .object(["width": .string("full")]),
        ]
        return .object([
            "type": .string("message"),
            "attachments": .array([
                .object([
                    "contentType": .string("application/vnd.microsoft.card.adaptive"),
                    "contentUrl": .null,
                    "content": .object(card),
                ])
            ]),
        ])
    }

    /// `text` cut at a character boundary so that it is at most `limit` UTF-16 units (and so at
    /// most `limit` code points, however the service counts), ending in "…" when cut.
    static func truncated(_ text: String, limit: Int) -> String {
        guard text.utf16.count > limit else { return text }
        var result = ""
        var used = 0
        for character in text {
            let size = character.utf16.count
            if used + size > limit - 1 { break }
            result.append(character)
            used += size
        }
        return result + "…"
    }
}
