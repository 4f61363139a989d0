public import SinkAPI

/// A Mustache template for one header value (an e-mail `Subject`, an HTTP header): CR, LF, TAB
/// and every other control character, and U+2028/U+2029, become spaces, in values and in the
/// result as a whole, which is also trimmed. A value can never start a new header line.
///
/// Otherwise like ``TextTemplate`` (same context, same checks), without `{{#json}}`. Encoding
/// for the wire (RFC 2047 for non-ASCII e-mail headers) is the caller's job.
public struct HeaderTemplate: Sendable, Hashable, Decodable, CustomStringConvertible {
    let compiled: CompiledTemplate

    /// Compiles `source`.
    public init(_ source: String) throws(TemplateError) {
        compiled = try CompiledTemplate(source: source, kind: .header)
    }

    /// Decodes a string and compiles it; a bad template is `invalid template: ...` at the value.
    public init(from decoder: any Decoder) throws {
        compiled = try CompiledTemplate.decode(from: decoder, kind: .header)
    }

    /// The template as written.
    public var source: String { compiled.source }
    public var description: String { compiled.source }

    /// The header value for `event`: one line, no control characters, trimmed.
    public func render(_ event: BridgeEvent) -> String {
        render(context: event.json)
    }

    /// The header value for any JSON context.
    public func render(context: JSONValue) -> String {
        Escaping.headerSafe(compiled.render(context)).trimmingSpaces()
    }
}
