import SinkAPI
import Mustache

/// The names under which this module registers its escapers with swift-mustache (its only way
/// to pick an escaper is a `{{% CONTENT_TYPE: NAME}}` pragma naming a registered one).
enum ContentTypeName {
    static let text = "GRAPH_BRIDGE_TEXT"
    static let slack = "GRAPH_BRIDGE_SLACK"
    static let chatMarkup = "GRAPH_BRIDGE_CHAT_MARKUP"
    static let json = "GRAPH_BRIDGE_JSON"
    static let jsonSection = "GRAPH_BRIDGE_JSON_SECTION"
    static let header = "GRAPH_BRIDGE_HEADER"
    static let html = "GRAPH_BRIDGE_HTML"

    /// Registers every escaper once per process, before the first template is parsed.
    static let registered: Void = {
        MustacheContentTypes.register(TextContent(), named: text)
        MustacheContentTypes.register(SlackContent(), named: slack)
        MustacheContentTypes.register(ChatMarkupContent(), named: chatMarkup)
        MustacheContentTypes.register(JSONStringContent(), named: json)
        MustacheContentTypes.register(TextContent(), named: jsonSection)
        MustacheContentTypes.register(HeaderContent(), named: header)
        MustacheContentTypes.register(HTMLContent(), named: html)
    }()
}

/// Values as they are; only the `{{#json}}` markers are neutralised.
struct TextContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.replacingMarkers(in: text)
    }
}

/// Values for Slack's `mrkdwn` text: `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;` (Slack's own rule),
/// so a value cannot form a link or a mention such as `<!channel>`.
struct SlackContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.slack(text)
    }
}

/// Values for Google Chat and Mattermost text, which have no escape for their mentions: a zero-width
/// space (U+200B, invisible) goes after each `<` (`<users/all>`, `<url|text>`, Mattermost's
/// Slack-style `<!channel>`), after each `]` (`[x](url)`, `![x](url)`) and after an `@` that starts
/// a word (`@channel`, `@here`, `@all`, `@user`; `alice@contoso.com` is left alone), so no value
/// can form a mention, a link or an image.
struct ChatMarkupContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.chatMarkup(text)
    }
}

/// Values as the inside of a JSON string literal: `"`, `\` and control characters escaped
/// (`\n`, `\u0001`), non-ASCII kept as UTF-8. The markers become `\ufdd0`/`\ufdd1` escapes,
/// which decode to the same characters.
struct JSONStringContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.jsonStringContent(text)
    }
}

/// Values fit for one header line: control characters (CR, LF, TAB, NUL, DEL, C1) and the
/// Unicode line and paragraph separators become spaces.
struct HeaderContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.headerSafe(text)
    }
}

/// Values HTML-escaped: `&`, `<`, `>`, `"`, `'`.
struct HTMLContent: MustacheContentType {
    func escapeText(_ text: String) -> String {
        Escaping.html(text)
    }
}

enum Escaping {
    static func isMarker(_ scalar: Unicode.Scalar) -> Bool {
        scalar == JSONSection.open || scalar == JSONSection.close
    }

    static func replacingMarkers(in text: String) -> String {
        guard text.unicodeScalars.contains(where: isMarker) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isMarker($0) ? "\u{FFFD}" : $0 }))
    }

    static func jsonStringContent(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 2)
        JSONValue.writeString(text, to: &bytes)
        let escaped = String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
        guard escaped.unicodeScalars.contains(where: isMarker) else { return escaped }
        var out = String.UnicodeScalarView()
        for scalar in escaped.unicodeScalars {
            switch scalar {
            case JSONSection.open: out.append(contentsOf: "\\ufdd0".unicodeScalars)
            case JSONSection.close: out.append(contentsOf: "\\ufdd1".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    static func isHeaderUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default: return isMarker(scalar)
        }
    }

    static func headerSafe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isHeaderUnsafe) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isHeaderUnsafe($0) ? " " : $0 }))
    }

    static func slack(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case _ where isMarker(scalar): out.append("\u{FFFD}")
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// U+200B ZERO WIDTH SPACE: not a letter, digit or punctuation to the services' parsers, so it
    /// ends a mention word and breaks `<...>` and `[...](...)` syntax, and it is not shown.
    static let zeroWidthSpace: Unicode.Scalar = "\u{200B}"

    static func chatMarkup(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var previous: Unicode.Scalar?
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<", "]":
                out.append(scalar)
                out.append(zeroWidthSpace)
            case "@" where !(previous.map { $0.properties.isAlphabetic || $0.properties.numericType != nil } ?? false):
                // Mattermost splits words at anything but letters, digits and `:.-_@`, and then
                // again at `.`, `-` and `:`: only an `@` right after a letter or digit is safe.
                out.append(scalar)
                out.append(zeroWidthSpace)
            case _ where isMarker(scalar):
                out.append("\u{FFFD}")
            default:
                out.append(scalar)
            }
            previous = scalar
        }
        return String(out)
    }

    static func html(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            case _ where isMarker(scalar): out.append("\u{FFFD}")
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
