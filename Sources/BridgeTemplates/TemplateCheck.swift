/// The names a template may start a path with, and the transforms swift-mustache knows.
enum TemplateNames {
    /// The event's top-level members (SPEC section 6), in their order.
    static let eventMembers = [
        "id", "receivedAt", "subscription", "changeType", "lifecycleEvent", "resource", "resourceData", "tenantId", "data", "resync",
    ]
    /// The section that turns its content into a JSON string literal (JSON and text templates).
    static let jsonSection = "json"
    /// Transforms (`{{lowercased(data.subject)}}`, `{{#first(data.toRecipients)}}`, `{{index()}}`)
    /// that some value of an event can answer; any other name would render nothing, silently.
    static let transforms: Set<String> = [
        "capitalized", "lowercased", "uppercased", "reversed", "empty", "first", "last", "count", "sorted", "index",
        "even", "odd",
    ]
}

/// One tag as written, found by a small scanner that follows swift-mustache's rules for
/// delimiters (it only runs on templates swift-mustache accepted, or to explain why it did not).
struct TemplateTag {
    enum Kind {
        case variable, unescaped, section, inverted, close, comment, partial, parent, block, delimiter, pragma
    }

    var kind: Kind
    /// Between the sigil and the closing delimiter, trimmed.
    var content: String
    /// The whole tag as written, for messages.
    var raw: String
    var line: Int
    var column: Int

    /// The path and the transforms around it: `lowercased(data.subject)` → (`data.subject`, [`lowercased`]).
    var nameAndTransforms: (name: String, transforms: [String]) {
        var transforms: [String] = []
        var rest = Substring(content)
        while let open = rest.firstIndex(of: "(") {
            transforms.append(String(rest[..<open]))
            rest = rest[rest.index(after: open)...]
        }
        while rest.last == ")" { rest = rest.dropLast() }
        return (String(rest), transforms)
    }

    static func scan(_ source: String) -> [TemplateTag] {
        let characters = Array(source)
        var openDelimiter: [Character] = ["{", "{"]
        var closeDelimiter: [Character] = ["}", "}"]
        var tags: [TemplateTag] = []
        var index = 0
        var line = 1
        var column = 1

        func matches(_ delimiter: [Character], at position: Int) -> Bool {
            guard position + delimiter.count <= characters.count else { return false }
            return characters[position..<position + delimiter.count].elementsEqual(delimiter)
        }
        func advance(to position: Int) {
            while index < position {
                if characters[index].isNewline {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                index += 1
            }
        }

        while index < characters.count {
            guard matches(openDelimiter, at: index) else {
                advance(to: index + 1)
                continue
            }
            let (tagLine, tagColumn, tagStart) = (line, column, index)
            var position = index + openDelimiter.count
            guard position < characters.count else { break }
            var kind = Kind.variable
            var terminator = closeDelimiter
            switch characters[position] {
            case "#": kind = .section
            case "^": kind = .inverted
            case "/": kind = .close
            case "!": kind = .comment
            case ">": kind = .partial
            case "<": kind = .parent
            case "$": kind = .block
            case "%": kind = .pragma
            case "&": kind = .unescaped
            case "=":
                kind = .delimiter
                terminator = ["="] + closeDelimiter
            case "{":
                kind = .unescaped
                terminator = ["}"] + closeDelimiter
            default: break
            }
            if kind != .variable { position += 1 }
            var end = position
            while end < characters.count, !matches(terminator, at: end) { end += 1 }
            guard end < characters.count else { break }
            let content = String(characters[position..<end]).trimmingSpaces()
            let tagEnd = end + terminator.count
            tags.append(
                TemplateTag(
                    kind: kind, content: content, raw: String(characters[tagStart..<tagEnd]), line: tagLine,
                    column: tagColumn))
            advance(to: tagEnd)
            if kind == .delimiter {
                let parts = content.split(whereSeparator: \.isWhitespace)
                if parts.count == 2 {
                    openDelimiter = Array(parts[0])
                    closeDelimiter = Array(parts[1])
                }
            }
        }
        return tags
    }
}

/// The checks swift-mustache does not make: it renders a missing path as nothing, so a typo
/// (`{{dat.subject}}`) would only ever show as an empty field in a chat message.
enum TemplateCheck {
    static func check(_ tags: [TemplateTag], kind: TemplateKind) throws(TemplateError) {
        // Open sections; `scoped` ones push a value whose own members names inside may refer to.
        var sections: [(name: String, scoped: Bool)] = []
        for tag in tags {
            func fail(_ message: String) -> TemplateError {
                TemplateError(message: message, line: tag.line, column: tag.column)
            }
            switch tag.kind {
            case .comment, .delimiter:
                continue
            case .partial, .parent, .block:
                throw fail("\(tag.raw): partials and template inheritance are not supported; write the whole template in place")
            case .pragma:
                throw fail("\(tag.raw): pragmas are not supported; the sink decides how values are escaped")
            case .close:
                if !sections.isEmpty { sections.removeLast() }
                continue
            case .unescaped where kind == .json:
                // Raw text in a JSON document lets a value (a mail subject) add or change members.
                throw fail(
                    "\(tag.raw): unescaped values are not allowed in a JSON template; write {{\(tag.content)}} instead "
                        + "(values are JSON-escaped: \"{{\(tag.content)}}\" for text, {{\(tag.content)}} unquoted for numbers and booleans)")
            case .variable, .unescaped, .section, .inverted:
                break
            }
            let (name, transforms) = tag.nameAndTransforms
            for transform in transforms where !TemplateNames.transforms.contains(transform) {
                var message = "unknown transform '\(transform)' in \(tag.raw)"
                if let suggestion = suggestion(for: transform, among: TemplateNames.transforms.sorted()) {
                    message += " (did you mean '\(suggestion)'?)"
                }
                throw fail(message + "; known transforms: \(TemplateNames.transforms.sorted().joined(separator: ", "))")
            }
            if name == TemplateNames.jsonSection, transforms.isEmpty, kind.offersJSONSection {
                guard tag.kind == .section else {
                    throw fail("\(tag.raw): json is a section; write {{#json}}...{{/json}} around what should become one JSON string")
                }
                // The lambda renders its content in the same context: no new scope.
                sections.append((name, false))
                continue
            }
            let inScope = sections.contains { $0.scoped }
            if !inScope, !name.isEmpty, !name.hasPrefix(".") {
                let first = String(name.split(separator: ".", omittingEmptySubsequences: false)[0])
                if !TemplateNames.eventMembers.contains(first) {
                    throw fail(unknownNameMessage(first: first, name: name, tag: tag, kind: kind))
                }
            }
            switch tag.kind {
            case .section: sections.append((name, true))
            case .inverted: sections.append((name, false))  // renders in the same context
            default: break
            }
        }
    }

    static func unknownNameMessage(first: String, name: String, tag: TemplateTag, kind: TemplateKind) -> String {
        if first == TemplateNames.jsonSection {
            return "\(tag.raw): {{#json}} sections exist only in JSON and text templates"
        }
        var message = "unknown name '\(first)' in \(tag.raw)"
        let rest = name.dropFirst(first.count)
        if let close = suggestion(for: first, among: TemplateNames.eventMembers) {
            message += " (did you mean '\(close)\(rest)'?)"
        } else {
            message += " (did you mean 'data.\(name)'?)"
        }
        return message + "; an event's top-level names are \(TemplateNames.eventMembers.joined(separator: ", "))"
    }

    /// The closest candidate: equal ignoring case, or else within edit distance 2 (and closer
    /// than the word's own length).
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        if let same = candidates.first(where: { $0.lowercased() == word.lowercased() }) { return same }
        let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < word.count else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
