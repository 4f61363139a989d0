import SinkAPI

extension CompiledTemplate {
    /// Reads a string (with `${VAR}` substituted by a `ConfigDecoder`) and compiles it; errors are
    /// `invalid template: ...` at the value's position.
    static func decode(from decoder: any Decoder, kind: TemplateKind) throws -> CompiledTemplate {
        let source = try decoder.singleValueContainer().decode(String.self)
        do {
            return try CompiledTemplate(source: source, kind: kind)
        } catch {
            throw decoder.configError("invalid template: \(error)")
        }
    }
}

extension CompiledTemplate: Hashable {
    static func == (lhs: CompiledTemplate, rhs: CompiledTemplate) -> Bool {
        lhs.source == rhs.source && lhs.kind == rhs.kind
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(source)
        hasher.combine(kind)
    }
}
