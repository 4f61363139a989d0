public import SinkAPI

/// A Mustache template for plain text (chat messages, e-mail text parts): values are inserted as
/// they are, with no escaping.
///
/// Rendered against the event's JSON (SPEC section 6): `{{data.subject}}`,
/// `{{subscription.name}}`, `{{#data.toRecipients}}{{emailAddress.address}} {{/data.toRecipients}}`.
/// Strings and numbers print as written, booleans as `true`/`false`, objects and arrays as compact
/// JSON; a missing value or `null` prints nothing. `{{#json}}...{{/json}}` prints its rendered
/// content as one JSON string literal, quotes included.
///
/// Compiled when the configuration is decoded: a syntax error, an unknown top-level name
/// (`{{dat.subject}}`), an unknown transform or a partial is a config error at the template's key.
public struct TextTemplate: Sendable, Hashable, Decodable, CustomStringConvertible {
    let compiled: CompiledTemplate

    /// Compiles `source`.
    public init(_ source: String) throws(TemplateError) {
        compiled = try CompiledTemplate(source: source, kind: .text)
    }

    /// Decodes a string and compiles it; a bad template is `invalid template: ...` at the value.
    public init(from decoder: any Decoder) throws {
        compiled = try CompiledTemplate.decode(from: decoder, kind: .text)
    }

    /// The template as written.
    public var source: String { compiled.source }
    public var description: String { compiled.source }

    /// The same template with values escaped for a chat service's markup. The template's own
    /// text is left alone, so it can still hold that markup (`<https://example.com|a link>`).
    public func escapingValues(_ escaping: TextEscaping) -> TextTemplate {
        let kind: TemplateKind
        switch escaping {
        case .none: kind = .text
        case .slack: kind = .slackText
        case .googleChat, .mattermost: kind = .chatMarkupText
        }
        guard kind != compiled.kind else { return self }
        do {
            return try TextTemplate(compiled: CompiledTemplate(source: compiled.source, kind: kind))
        } catch {
            preconditionFailure("a text template that compiled failed to compile again: \(error)")
        }
    }

    init(compiled: CompiledTemplate) {
        self.compiled = compiled
    }

    /// The text for `event`.
    public func render(_ event: BridgeEvent) -> String {
        compiled.render(event.json)
    }

    /// The text for any JSON context (the event's JSON, or a sample).
    public func render(context: JSONValue) -> String {
        compiled.render(context)
    }
}

/// How ``TextTemplate`` inserts values.
public enum TextEscaping: Sendable, Hashable {
    /// As they are (the default).
    case none
    /// For Slack `mrkdwn`: `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;`, so that text from a mail
    /// cannot form a link or a mention such as `<!channel>`.
    case slack
    /// For Google Chat: a zero-width space after `<`, `]` and a word-initial `@` in values, so
    /// that text from a mail cannot form `<users/all>`, `<url|text>` or `[text](url)`.
    case googleChat
    /// For Mattermost: as ``googleChat`` (which also stops `@channel`, `@here`, `@all`, `@user`,
    /// `![image](url)` and Slack-style `<!channel>`).
    case mattermost
}
