public import SinkAPI

/// A Mustache template whose result is a JSON document (a webhook's custom body).
///
/// Values are escaped as the inside of a JSON string, so `"{{data.subject}}"` is always one valid
/// string, whatever the subject holds (quotes, backslashes, newlines, `<`, `&`, non-ASCII).
/// `{{#json}}{{data.subject}}{{/json}}` writes the section's rendered content as a complete
/// JSON string literal, quotes included: `{"msg": {{#json}}From {{data.from.emailAddress.name}}{{/json}}}`.
/// Numbers and booleans can stand unquoted (`"size": {{data.size}}`): their text needs no
/// escaping. `{{{value}}}` and `{{&value}}` (unescaped) are refused when the template is compiled:
/// a value could otherwise add members to the document.
///
/// Compiled when the configuration is decoded (see ``TextTemplate`` for the checks). Whether
/// the result is JSON can only be known per event: ``render(_:)`` parses it and throws a
/// permanent ``SinkError`` when it is not.
public struct JSONTemplate: Sendable, Hashable, Decodable, CustomStringConvertible {
    let compiled: CompiledTemplate

    /// Compiles `source`.
    public init(_ source: String) throws(TemplateError) {
        compiled = try CompiledTemplate(source: source, kind: .json)
    }

    /// Decodes a string and compiles it; a bad template is `invalid template: ...` at the value.
    public init(from decoder: any Decoder) throws {
        compiled = try CompiledTemplate.decode(from: decoder, kind: .json)
    }

    /// The template as written.
    public var source: String { compiled.source }
    public var description: String { compiled.source }

    /// The JSON document for `event`.
    ///
    /// - Throws: `SinkError.permanent` when the rendered text is not JSON (the same event would
    ///   fail the same way on every retry).
    public func render(_ event: BridgeEvent) throws(SinkError) -> JSONValue {
        try render(context: event.json)
    }

    /// The JSON document for any JSON context.
    public func render(context: JSONValue) throws(SinkError) -> JSONValue {
        let text = renderText(context: context)
        do {
            return try JSONParser.parse(text, maxDepth: 256)
        } catch {
            throw SinkError.permanent(
                "the body template did not produce valid JSON (\(error)); near: \(Self.excerpt(text, aroundByte: error.offset))"
            )
        }
    }

    /// The rendered text without the JSON check (diagnostics, tests).
    public func renderText(context: JSONValue) -> String {
        compiled.render(context)
    }

    /// Up to 40 bytes either side of `offset`, on one line, for an error message.
    static func excerpt(_ text: String, aroundByte offset: Int) -> String {
        let bytes = Array(text.utf8)
        let start = max(0, offset - 40)
        let end = min(bytes.count, offset + 40)
        let slice = String(decoding: bytes[start..<end], as: UTF8.self)
        return Escaping.headerSafe(slice)
    }
}
