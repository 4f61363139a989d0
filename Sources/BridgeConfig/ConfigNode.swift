/// The parsed YAML tree, with the position of every node.
///
/// Scalars keep their raw text: libyaml attaches no types, so the decoder interprets them
/// (`8080`, `true` and `yes` all arrive as text). `quoted` is true for single- and double-quoted
/// scalars, block scalars (`|`, `>`) and `!!str`-tagged ones, so `"8080"` and `"true"` stay
/// strings and `~`, `null` or nothing at all mean null only when unquoted.
///
/// Aliases are resolved to the anchored node (which keeps its own marks) and `<<` merge keys are
/// already applied: a mapping lists its explicit keys in file order, with merged keys in place
/// of the `<<` entry.
public indirect enum ConfigNode: Sendable {
    /// A scalar's raw text (before `${VAR}` substitution) and whether it was quoted or a block scalar.
    case scalar(String, quoted: Bool, mark: ConfigMark)
    /// A list, block (`- item`) or flow (`[a, b]`).
    case sequence([ConfigNode], mark: ConfigMark)
    /// A mapping in file order; keys are plain text (never interpolated), each with its own mark.
    case mapping([(key: String, keyMark: ConfigMark, value: ConfigNode)], mark: ConfigMark)

    /// Where the node starts in the file.
    public var mark: ConfigMark {
        switch self {
        case .scalar(_, _, let mark), .sequence(_, let mark), .mapping(_, let mark): mark
        }
    }

    /// True for an unquoted `~`, `null`, `Null`, `NULL` or empty scalar.
    public var isNull: Bool {
        if case .scalar(let text, let quoted, _) = self, !quoted {
            return Self.isNullText(text)
        }
        return false
    }

    /// The raw text of a scalar; nil for a sequence or mapping.
    public var scalarText: String? {
        if case .scalar(let text, _, _) = self { return text }
        return nil
    }

    /// The items of a sequence; nil for a scalar or mapping.
    public var items: [ConfigNode]? {
        if case .sequence(let items, _) = self { return items }
        return nil
    }

    /// The value of `key` when this is a mapping that has it.
    public subscript(key: String) -> ConfigNode? {
        if case .mapping(let entries, _) = self {
            return entries.first { $0.key == key }?.value
        }
        return nil
    }

    /// The keys of a mapping in file order; nil for a scalar or sequence.
    public var keys: [String]? {
        if case .mapping(let entries, _) = self { return entries.map(\.key) }
        return nil
    }

    /// How error messages name the node: `'text'`, `null`, `a list` or `a mapping`.
    var foundDescription: String {
        switch self {
        case .scalar(let text, _, _): isNull ? "null" : Self.quote(text)
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    static func isNullText(_ text: String) -> Bool {
        switch text {
        case "", "~", "null", "Null", "NULL": true
        default: false
        }
    }

    /// `text` in single quotes for a message, shortened and kept on one line.
    static func quote(_ text: String) -> String {
        var shown = ""
        for character in text {
            if shown.count >= 60 {
                shown += "…"
                break
            }
            switch character {
            case "\n", "\r\n": shown += "\\n"
            case "\r": shown += "\\r"
            case "\t": shown += "\\t"
            default: shown.append(character)
            }
        }
        return "'\(shown)'"
    }
}

extension ConfigNode: Equatable {
    /// Structural equality, marks included.
    public static func == (lhs: ConfigNode, rhs: ConfigNode) -> Bool {
        switch (lhs, rhs) {
        case (.scalar(let l, let lq, let lm), .scalar(let r, let rq, let rm)):
            return l == r && lq == rq && lm == rm
        case (.sequence(let l, let lm), .sequence(let r, let rm)):
            return lm == rm && l == r
        case (.mapping(let l, let lm), .mapping(let r, let rm)):
            return lm == rm && l.count == r.count
                && zip(l, r).allSatisfy { $0.key == $1.key && $0.keyMark == $1.keyMark && $0.value == $1.value }
        default:
            return false
        }
    }
}

extension ConfigNode: Decodable {
    /// Keeps the node as it is, to decode later with `ConfigDecoder.decode(_:from:)`
    /// (for example `sinks: [String: ConfigNode]`, decoded per sink once its `type` is known).
    /// Only a `ConfigDecoder` can provide one. Keeping a mapping this way does not mark its keys
    /// as known: the later decode does.
    public init(from decoder: any Decoder) throws {
        guard let node = decoder.configNode else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "ConfigNode can only be decoded by a ConfigDecoder")
            )
        }
        self = node
    }
}
