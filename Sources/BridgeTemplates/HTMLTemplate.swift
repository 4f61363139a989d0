public import SinkAPI

/// A Mustache template for HTML (an e-mail's text/html part): values are HTML-escaped
/// (`&`, `<`, `>`, `"`, `'`); `{{{value}}}` and `{{&value}}` insert a value unescaped.
///
/// Otherwise like ``TextTemplate`` (same context, same checks), without `{{#json}}`.
public struct HTMLTemplate: Sendable, Hashable, Decodable, CustomStringConvertible {
    let compiled: CompiledTemplate

    /// Compiles `source`.
    public init(_ source: String) throws(TemplateError) {
        compiled = try CompiledTemplate(source: source, kind: .html)
    }

    /// Decodes a string and compiles it; a bad template is `invalid template: ...` at the value.
    public init(from decoder: any Decoder) throws {
        compiled = try CompiledTemplate.decode(from: decoder, kind: .html)
    }

    /// The template as written.
    public var source: String { compiled.source }
    public var description: String { compiled.source }

    /// The HTML for `event`.
    public func render(_ event: BridgeEvent) -> String {
        compiled.render(event.json)
    }

    /// The HTML for any JSON context.
    public func render(context: JSONValue) -> String {
        compiled.render(context)
    }
}
