import SinkAPI
import Mustache

// How the event's JSON looks to swift-mustache.
//
// The renderer reads objects through `MustacheParent`, walks `MustacheSequence`s in sections and
// prints `MustacheCustomRenderable`s with their `renderText`; anything else is printed with
// `String(describing:)`. So: strings and number texts become `String` (numbers render exactly as
// written), booleans become `Bool` (sections test them; they print `true`/`false`), null becomes
// nil (a missing value), and objects and arrays become the wrappers below, which print as compact
// JSON when used as a value (`{{{data}}}` in a text template prints the object as JSON).

extension JSONValue {
    /// The value as swift-mustache should see it; nil for `null`.
    var mustacheValue: Any? {
        switch self {
        case .null: return nil
        case .bool(let value): return value
        case .number(let text): return text
        case .string(let text): return text
        case .array(let elements): return TemplateArray(elements)
        case .object(let object): return TemplateObject(object)
        }
    }
}

/// A JSON object: members by name, printed as JSON.
struct TemplateObject: MustacheParent, MustacheCustomRenderable {
    let object: JSONObject

    init(_ object: JSONObject) {
        self.object = object
    }

    func child(named name: String) -> Any? {
        object[name]?.mustacheValue
    }

    var renderText: String { JSONValue.object(object).serializedString }
    var isNull: Bool { false }
}

/// A JSON array: a section repeats per element; printed as JSON. Transforms: `first`, `last`,
/// `count`, `empty`, `reversed`.
struct TemplateArray: MustacheSequence, MustacheCustomRenderable, MustacheTransformable {
    let elements: [JSONValue]

    init(_ elements: [JSONValue]) {
        self.elements = elements
    }

    func makeIterator() -> IndexingIterator<[Any]> {
        elements.map { $0.mustacheValue ?? TemplateNull() }.makeIterator()
    }

    var renderText: String { JSONValue.array(elements).serializedString }
    var isNull: Bool { false }

    func transform(_ name: String) -> Any? {
        switch name {
        case "first": return elements.first?.mustacheValue
        case "last": return elements.last?.mustacheValue
        case "count": return elements.count
        case "empty": return elements.isEmpty
        case "reversed": return TemplateArray(elements.reversed())
        default: return nil
        }
    }
}

/// A `null` element of an array: falsy in sections, prints nothing.
struct TemplateNull: MustacheCustomRenderable {
    var renderText: String { "" }
    var isNull: Bool { true }
}

/// The object a template renders against: the event's members, plus the `json` section lambda
/// where the template kind offers it.
struct TemplateRoot: MustacheParent, MustacheCustomRenderable {
    let event: JSONValue
    let offersJSONSection: Bool

    func child(named name: String) -> Any? {
        if offersJSONSection, name == TemplateNames.jsonSection {
            return JSONSection.lambda
        }
        return event[name]?.mustacheValue
    }

    var renderText: String { event.serializedString }
    var isNull: Bool { false }
}

/// `{{#json}}...{{/json}}`: the section's rendered content as one JSON string literal (quotes
/// included).
///
/// swift-mustache hands a section lambda the section's *unrendered* text and renders whatever
/// string it returns in the current context. The lambda wraps that text in two Unicode
/// noncharacters and switches values inside to raw output (`JSONSectionContent`); after the
/// whole template has rendered, ``JSONSection/encodeMarkedSections(_:)`` replaces every marked
/// span (innermost first) with its JSON string literal. Values can never forge a marker: every
/// content type replaces or escapes the two noncharacters, and templates containing them are
/// refused at compile time.
enum JSONSection {
    static let open = Unicode.Scalar(UInt32(0xFDD0))!  // noncharacters: Swift refuses them as literals
    static let close = Unicode.Scalar(UInt32(0xFDD1))!

    static var lambda: MustacheLambda {
        MustacheLambda { (text: String) -> Any? in
            "{{% CONTENT_TYPE: \(ContentTypeName.jsonSection)}}\(open)\(text)\(close)"
        }
    }

    /// Replaces each `open ... close` span with the JSON string literal of what it holds.
    static func encodeMarkedSections(_ rendered: String) -> String {
        guard rendered.unicodeScalars.contains(where: { $0 == open || $0 == close }) else { return rendered }
        var stack: [String.UnicodeScalarView] = [String.UnicodeScalarView()]
        for scalar in rendered.unicodeScalars {
            if scalar == open {
                stack.append(String.UnicodeScalarView())
            } else if scalar == close, stack.count > 1 {
                let inner = stack.removeLast()
                stack[stack.count - 1].append(contentsOf: jsonLiteral(String(inner)).unicodeScalars)
            } else {
                stack[stack.count - 1].append(scalar)
            }
        }
        // Unbalanced markers cannot come from a template that compiled; flatten defensively.
        while stack.count > 1 {
            let inner = stack.removeLast()
            stack[stack.count - 1].append(contentsOf: inner)
        }
        return String(stack[0])
    }

    static func jsonLiteral(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONValue.writeString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
