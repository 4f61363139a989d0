import CYAML

/// Turns libyaml's event stream into a `ConfigNode` tree: resolves aliases and `<<` merge keys,
/// rejects duplicate keys, non-scalar keys and second documents, and bounds nesting depth and
/// alias expansion so that no input can exhaust the stack or memory.
///
/// This is the only place that talks to libyaml.
struct YAMLTreeBuilder {
    /// Deeper documents are rejected (deep trees would also make recursive teardown risky).
    static let maximumDepth = 200
    /// Total nodes that aliases may copy in (a "billion laughs" document stops here).
    static let maximumAliasExpansion = 1_000_000

    let file: String

    /// Parses `bytes` (UTF-8, or UTF-16 with a byte-order mark). An empty document is an empty mapping.
    static func parse(_ bytes: [UInt8], file: String) throws(ConfigError) -> ConfigNode {
        var builder = YAMLTreeBuilder(file: file)
        let result = bytes.withUnsafeBufferPointer { buffer in
            builder.run(buffer)
        }
        return try result.get()
    }

    // MARK: Driving libyaml

    private mutating func run(_ input: UnsafeBufferPointer<UInt8>) -> Result<ConfigNode, ConfigError> {
        // The parser keeps a pointer to itself (string input handler), so it must not move: heap it.
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            return .failure(ConfigError(file: file, mark: nil, message: "cannot start the YAML parser (out of memory)"))
        }
        defer { yaml_parser_delete(parser) }
        guard let base = input.baseAddress, !input.isEmpty else {
            return .success(.mapping([], mark: .start))
        }
        yaml_parser_set_input_string(parser, base, input.count)

        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(parser, &event) == 1 else {
                return .failure(syntaxError(parser.pointee, input: input))
            }
            defer { yaml_event_delete(&event) }
            do {
                if try handle(event) { break }
            } catch {
                return .failure(error)
            }
        }
        return .success(root ?? .mapping([], mark: .start))
    }

    private func syntaxError(_ parser: yaml_parser_t, input: UnsafeBufferPointer<UInt8>) -> ConfigError {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        switch parser.error {
        case YAML_MEMORY_ERROR:
            return ConfigError(file: file, mark: nil, message: "out of memory while parsing YAML")
        case YAML_READER_ERROR:
            // Reader errors (bad UTF-8, control characters) carry a byte offset instead of a mark.
            let mark = Self.mark(atByteOffset: parser.problem_offset, in: input)
            var message = problem
            if parser.problem_value >= 0 {
                let hex = String(parser.problem_value, radix: 16, uppercase: true)
                message += " (0x\(hex.count.isMultiple(of: 2) ? hex : "0" + hex))"
            }
            if problem.contains("UTF") { message += "; the file must be UTF-8 text" }
            return ConfigError(file: file, mark: mark, message: message)
        default:
            let mark = Self.mark(parser.problem_mark)
            var message = problem
            if let context = parser.context.map({ String(cString: $0) }) {
                let contextMark = Self.mark(parser.context_mark)
                if contextMark != mark {
                    message += " (\(context) at line \(contextMark.line), column \(contextMark.column))"
                }
            }
            if problem.contains("cannot start any token"), Self.character(at: mark, in: input) == UInt8(ascii: "\t") {
                message += " (a tab: indent with spaces)"
            }
            return ConfigError(file: file, mark: mark, message: message)
        }
    }

    // MARK: Building the tree

    private struct PendingKey {
        var text: String
        var mark: ConfigMark
        var isMerge: Bool
    }

    private enum Entry {
        case pair(key: String, keyMark: ConfigMark, value: ConfigNode)
        case merge(ConfigNode)
    }

    private struct Frame {
        var isMapping: Bool
        var mark: ConfigMark
        var anchor: String?
        var items: [ConfigNode] = []
        var entries: [Entry] = []
        var keyMarks: [String: ConfigMark] = [:]
        var pendingKey: PendingKey?
        var weight = 1
    }

    private var stack: [Frame] = []
    private var anchors: [String: (node: ConfigNode, weight: Int)] = [:]
    private var root: ConfigNode?
    private var documents = 0
    private var aliasExpansion = 0

    /// Handles one event; true at the end of the stream.
    private mutating func handle(_ event: yaml_event_t) throws(ConfigError) -> Bool {
        let mark = Self.mark(event.start_mark)
        switch event.type {
        case YAML_STREAM_END_EVENT:
            return true
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw ConfigError(
                    file: file, mark: mark,
                    message: "a second YAML document starts here; a config file holds exactly one document"
                )
            }
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = Self.string(scalar.value, length: scalar.length)
            let tag = scalar.tag.map { String(cString: $0) }
            let quoted = scalar.style != YAML_PLAIN_SCALAR_STYLE || tag == "tag:yaml.org,2002:str"
            let node = ConfigNode.scalar(text, quoted: quoted, mark: mark)
            if let anchor = scalar.anchor { anchors[String(cString: anchor)] = (node, 1) }
            try add(node, weight: 1, at: mark)
        case YAML_ALIAS_EVENT:
            let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
            guard let anchored = anchors[name] else {
                throw ConfigError(
                    file: file, mark: mark,
                    message: "unknown anchor '\(name)' (define it with &\(name) before using *\(name))"
                )
            }
            aliasExpansion += anchored.weight
            if aliasExpansion > Self.maximumAliasExpansion {
                throw ConfigError(
                    file: file, mark: mark,
                    message:
                        "aliases expand to more than \(Self.maximumAliasExpansion) nodes; this is not a config file"
                )
            }
            try add(anchored.node, weight: anchored.weight, at: mark)
        case YAML_SEQUENCE_START_EVENT:
            try push(isMapping: false, mark: mark, anchor: event.data.sequence_start.anchor)
        case YAML_MAPPING_START_EVENT:
            try push(isMapping: true, mark: mark, anchor: event.data.mapping_start.anchor)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { break }
            let node = frame.isMapping ? try finishMapping(frame) : .sequence(frame.items, mark: frame.mark)
            if let anchor = frame.anchor { anchors[anchor] = (node, frame.weight) }
            try add(node, weight: frame.weight, at: frame.mark)
        default:
            break  // stream start, document end, no event
        }
        return false
    }

    private mutating func push(isMapping: Bool, mark: ConfigMark, anchor: UnsafeMutablePointer<yaml_char_t>?)
        throws(ConfigError)
    {
        if stack.count >= Self.maximumDepth {
            throw ConfigError(
                file: file, mark: mark, message: "nesting is deeper than \(Self.maximumDepth) levels"
            )
        }
        if let frame = stack.last, frame.isMapping, frame.pendingKey == nil {
            throw ConfigError(
                file: file, mark: mark, message: "a mapping key must be a plain value, not a list or mapping"
            )
        }
        stack.append(Frame(isMapping: isMapping, mark: mark, anchor: anchor.map { String(cString: $0) }))
    }

    /// Adds a finished node to the open container (or makes it the root). `position` is where it
    /// appears, which differs from `node.mark` for an alias.
    private mutating func add(_ node: ConfigNode, weight: Int, at position: ConfigMark) throws(ConfigError) {
        guard var frame = stack.popLast() else {
            root = node.isNull ? .mapping([], mark: node.mark) : node
            return
        }
        defer { stack.append(frame) }
        frame.weight += weight
        guard frame.isMapping else {
            frame.items.append(node)
            return
        }
        guard let key = frame.pendingKey else {
            guard case .scalar(let text, let quoted, _) = node else {
                throw ConfigError(
                    file: file, mark: position, message: "a mapping key must be a plain value, not a list or mapping"
                )
            }
            let isMerge = !quoted && text == "<<"
            if let first = frame.keyMarks[text] {
                throw ConfigError(
                    file: file, mark: position,
                    message: "duplicate key '\(text)' (first defined at line \(first.line), column \(first.column))"
                )
            }
            frame.keyMarks[text] = position
            frame.pendingKey = PendingKey(text: text, mark: position, isMerge: isMerge)
            return
        }
        frame.pendingKey = nil
        frame.entries.append(key.isMerge ? .merge(node) : .pair(key: key.text, keyMark: key.mark, value: node))
    }

    /// Applies `<<` merges: explicit keys win wherever they are; among merged mappings the earlier wins.
    private func finishMapping(_ frame: Frame) throws(ConfigError) -> ConfigNode {
        var seen = Set<String>()
        for case .pair(let key, _, _) in frame.entries { seen.insert(key) }
        var entries: [(key: String, keyMark: ConfigMark, value: ConfigNode)] = []
        entries.reserveCapacity(frame.entries.count)
        for entry in frame.entries {
            switch entry {
            case .pair(let key, let keyMark, let value):
                entries.append((key, keyMark, value))
            case .merge(let source):
                let sources: [ConfigNode]
                switch source {
                case .mapping: sources = [source]
                case .sequence(let items, _): sources = items
                case .scalar: sources = [source]
                }
                for source in sources {
                    guard case .mapping(let merged, _) = source else {
                        throw ConfigError(
                            file: file, mark: source.mark,
                            message:
                                "the merge key '<<' takes a mapping or a list of mappings, found \(source.foundDescription)"
                        )
                    }
                    for item in merged where seen.insert(item.key).inserted {
                        entries.append(item)
                    }
                }
            }
        }
        return .mapping(entries, mark: frame.mark)
    }

    // MARK: Conversions

    private static func mark(_ mark: yaml_mark_t) -> ConfigMark {
        ConfigMark(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
        guard let pointer else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// The 1-based line and column of a byte offset (columns count characters, as libyaml's do).
    static func mark(atByteOffset offset: Int, in input: UnsafeBufferPointer<UInt8>) -> ConfigMark {
        var line = 1
        var column = 1
        var index = 0
        let end = min(offset, input.count)
        while index < end {
            let byte = input[index]
            if byte == UInt8(ascii: "\n")
                || (byte == UInt8(ascii: "\r") && (index + 1 >= input.count || input[index + 1] != UInt8(ascii: "\n")))
            {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
            index += 1
        }
        return ConfigMark(line: line, column: column)
    }

    /// The first byte of the character at `mark`, when the input is UTF-8.
    private static func character(at mark: ConfigMark, in input: UnsafeBufferPointer<UInt8>) -> UInt8? {
        var line = 1
        var index = 0
        while line < mark.line, index < input.count {
            if input[index] == UInt8(ascii: "\n") { line += 1 }
            index += 1
        }
        var column = 1
        while index < input.count {
            if input[index] & 0xC0 != 0x80 {
                if column == mark.column { return input[index] }
                column += 1
            }
            index += 1
        }
        return nil
    }
}
