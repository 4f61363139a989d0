/// What every level of one decode shares: the document, the environment for `${VAR}`, and
/// the scalar interpretation rules (YAML 1.2 core style, applied after interpolation).
struct DecodingContext: Sendable {
    let document: ConfigDocument
    let environment: [String: String]
    let userInfo: [CodingUserInfoKey: any Sendable]

    var tracker: KeyTracker { document.keyTracker }

    // MARK: Errors

    func error(_ message: String, at mark: ConfigMark?) -> ConfigError {
        ConfigError(file: document.file, mark: mark, message: message)
    }

    /// `message`, then ` in PATH` when there is a path.
    func error(_ message: String, at mark: ConfigMark?, path: [any CodingKey]) -> ConfigError {
        let rendered = PathKey.render(path)
        return error(rendered.isEmpty ? message : "\(message) in \(rendered)", at: mark)
    }

    /// "expected WHAT, found WHAT-IT-IS in PATH" at the node.
    func mismatch(_ expected: String, _ node: ConfigNode, path: [any CodingKey]) -> ConfigError {
        error("expected \(expected), found \(node.foundDescription)", at: node.mark, path: path)
    }

    // MARK: Decoding values

    /// Decodes one value: scalars the decoder knows are read directly, anything else through its
    /// `init(from:)` on a decoder over `node`. Whatever fails comes out as a `ConfigError`.
    func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode, path: [any CodingKey]) throws -> T {
        if let value = try decodeBuiltIn(type, from: node, path: path) {
            return value
        }
        tracker.remember(node, path: path.map(PathKey.init))
        let decoder = NodeDecoder(node: node, codingPath: path, context: self)
        do {
            return try T(from: decoder)
        } catch let error as ConfigError {
            throw error
        } catch let error as ConfigErrors {
            throw error
        } catch {
            throw convert(error, decoding: T.self, from: node, path: path)
        }
    }

    private func decodeBuiltIn<T>(_ type: T.Type, from node: ConfigNode, path: [any CodingKey]) throws -> T? {
        if T.self == String.self { return try string(node, path: path) as? T }
        if T.self == Bool.self { return try bool(node, path: path) as? T }
        if let integerType = T.self as? any FixedWidthInteger.Type {
            return try integer(integerType, node, path: path) as? T
        }
        if T.self == Double.self { return try floatingPoint(Double.self, node, path: path) as? T }
        if T.self == Float.self { return try floatingPoint(Float.self, node, path: path) as? T }
        if T.self == Duration.self {
            return try decode(ConfigDuration.self, from: node, path: path).duration as? T
        }
        return nil
    }

    /// Turns an error thrown by some type's own `init(from:)` (not by this decoder) into a
    /// `ConfigError` at the node that type was decoding.
    private func convert<T>(_ error: any Error, decoding type: T.Type, from node: ConfigNode, path: [any CodingKey])
        -> ConfigError
    {
        switch error {
        case DecodingError.dataCorrupted(let context):
            if let enumType = T.self as? any (CaseIterable & RawRepresentable).Type {
                let allowed = Self.rawValues(enumType).joined(separator: ", ")
                return self.error("expected one of \(allowed); found \(found(node))", at: node.mark, path: path)
            }
            return self.error(
                "invalid \(T.self) \(found(node)): \(context.debugDescription)", at: node.mark, path: path)
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.keyNotFound(_, let context):
            return self.error(context.debugDescription, at: node.mark, path: path)
        default:
            return self.error(String(describing: error), at: node.mark, path: path)
        }
    }

    private static func rawValues<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> [String] {
        type.allCases.map { "\($0.rawValue)" }
    }

    // MARK: Scalars

    /// The scalar's text with `${VAR}` references replaced; errors at the scalar's mark.
    func interpolate(_ raw: String, at mark: ConfigMark) throws(ConfigError) -> String {
        switch Interpolation.expand(raw, environment: environment) {
        case .success(let text): return text
        case .failure(let problem): throw error(problem.message, at: mark)
        }
    }

    /// True for an unquoted null (`~`, `null`, empty), also when interpolation produced it:
    /// `${PROXY:-}` with PROXY unset decodes to nil for an optional.
    func isNull(_ node: ConfigNode) throws(ConfigError) -> Bool {
        guard case .scalar(let raw, let quoted, let mark) = node, !quoted else { return false }
        if ConfigNode.isNullText(raw) { return true }
        guard Interpolation.hasReference(raw) else { return false }
        return ConfigNode.isNullText(try interpolate(raw, at: mark))
    }

    /// How a message names a scalar's value: the text as written, so an environment value (which
    /// may be a secret) is never echoed.
    func found(_ node: ConfigNode) -> String {
        guard case .scalar(let raw, _, _) = node, Interpolation.hasReference(raw) else {
            return node.foundDescription
        }
        let expanded = try? interpolate(raw, at: node.mark)
        if expanded?.isEmpty == true {
            return "\(ConfigNode.quote(raw)), which is empty once environment variables are substituted"
        }
        return "\(ConfigNode.quote(raw)) (after substituting environment variables)"
    }

    /// The interpolated text of a scalar that is not null; `expected` names the type for errors.
    func text(_ node: ConfigNode, expected: String, path: [any CodingKey]) throws -> String {
        guard case .scalar(let raw, let quoted, let mark) = node else {
            throw mismatch(expected, node, path: path)
        }
        let text = try interpolate(raw, at: mark)
        if !quoted && ConfigNode.isNullText(text) {
            throw error("expected \(expected), found \(found(node))", at: mark, path: path)
        }
        return text
    }

    /// Any scalar except a literal null (`key:` with nothing after it is not an empty string).
    func string(_ node: ConfigNode, path: [any CodingKey]) throws -> String {
        guard case .scalar(let raw, let quoted, let mark) = node else {
            throw mismatch("a string", node, path: path)
        }
        if !quoted && ConfigNode.isNullText(raw) {
            throw error("expected a string, found null (write \"\" for an empty string)", at: mark, path: path)
        }
        return try interpolate(raw, at: mark)
    }

    /// `true` or `false` (also `True`, `TRUE`, `False`, `FALSE`), quoted or not; nothing else.
    func bool(_ node: ConfigNode, path: [any CodingKey]) throws -> Bool {
        let text = try text(node, expected: "true or false", path: path)
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            var message = "expected true or false, found \(found(node))"
            if ["yes", "no", "on", "off", "y", "n"].contains(text.lowercased()) {
                message += " (YAML 1.2: only true and false are booleans)"
            }
            throw error(message, at: node.mark, path: path)
        }
    }

    /// Decimal with an optional sign, or `0x`, `0o`, `0b` prefixed.
    func integer<I: FixedWidthInteger>(_ type: I.Type, _ node: ConfigNode, path: [any CodingKey]) throws -> I {
        let text = try text(node, expected: "an integer", path: path)
        switch Self.parseInteger(text, as: I.self) {
        case .value(let value):
            return value
        case .outOfRange:
            throw error(
                "expected an integer from \(I.min) to \(I.max), found \(found(node))", at: node.mark, path: path
            )
        case .invalid:
            throw error("expected an integer, found \(found(node))", at: node.mark, path: path)
        }
    }

    enum ParsedInteger<I> {
        case value(I)
        case outOfRange
        case invalid
    }

    static func parseInteger<I: FixedWidthInteger>(_ text: String, as type: I.Type) -> ParsedInteger<I> {
        var digits = text[...]
        var negative = false
        if let sign = digits.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        var radix = 10
        let lowered = digits.lowercased()
        if let (_, base) = [("0x", 16), ("0o", 8), ("0b", 2)].first(where: { lowered.hasPrefix($0.0) }) {
            radix = base
            digits = digits.dropFirst(2)
        }
        guard !digits.isEmpty,
            digits.allSatisfy({ $0.isASCII && $0.isHexDigit && Int(String($0), radix: radix) != nil })
        else {
            return .invalid
        }
        if let value = I(negative ? "-" + digits : String(digits), radix: radix) {
            return .value(value)
        }
        return .outOfRange
    }

    /// Decimal or exponent notation, and YAML's `.inf`, `-.inf`, `.nan`.
    func floatingPoint<F: BinaryFloatingPoint & LosslessStringConvertible>(
        _ type: F.Type, _ node: ConfigNode, path: [any CodingKey]
    ) throws -> F {
        let text = try text(node, expected: "a number", path: path)
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        let isNumeric = text.allSatisfy { $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }
        guard isNumeric, let value = F(text) else {
            throw error("expected a number, found \(found(node))", at: node.mark, path: path)
        }
        return value
    }
}
