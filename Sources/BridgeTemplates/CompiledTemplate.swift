import SinkAPI
import Mustache

/// How a template's values are escaped, and whether it offers `{{#json}}`.
enum TemplateKind: Sendable {
    case text, slackText, chatMarkupText, json, header, html

    var contentTypeName: String {
        switch self {
        case .text: ContentTypeName.text
        case .slackText: ContentTypeName.slack
        case .chatMarkupText: ContentTypeName.chatMarkup
        case .json: ContentTypeName.json
        case .header: ContentTypeName.header
        case .html: ContentTypeName.html
        }
    }

    var offersJSONSection: Bool { self == .text || self == .slackText || self == .chatMarkupText || self == .json }
}

/// A parsed swift-mustache template plus what this module adds: the escaper of its kind, the
/// `{{#json}}` section, and the compile-time checks of ``TemplateCheck``.
struct CompiledTemplate: Sendable {
    let source: String
    let kind: TemplateKind
    let template: MustacheTemplate

    /// Prepended to every template to select the kind's escaper. It is a standalone tag on a
    /// line of its own, so it renders nothing and shifts parser positions by exactly one line.
    private static func pragma(for kind: TemplateKind) -> String {
        "{{% CONTENT_TYPE: \(kind.contentTypeName)}}\n"
    }

    init(source: String, kind: TemplateKind) throws(TemplateError) {
        ContentTypeName.registered
        if let offset = source.unicodeScalars.firstIndex(where: Escaping.isMarker) {
            let line = source.unicodeScalars[..<offset].filter { $0 == "\n" }.count + 1
            throw TemplateError(message: "the template contains the reserved character U+FDD0 or U+FDD1", line: line)
        }
        let tags = TemplateTag.scan(source)
        do {
            template = try MustacheTemplate(string: Self.pragma(for: kind) + source)
        } catch let error as MustacheTemplate.ParserError {
            throw Self.explain(error, tags: tags)
        } catch {
            throw TemplateError(message: "\(error)")
        }
        try TemplateCheck.check(tags, kind: kind)
        self.source = source
        self.kind = kind
    }

    /// Renders against `context` (an event's JSON) and resolves `{{#json}}` sections.
    func render(_ context: JSONValue) -> String {
        let root = TemplateRoot(event: context, offersJSONSection: kind.offersJSONSection)
        let rendered = template.render(root)
        return kind.offersJSONSection ? JSONSection.encodeMarkedSections(rendered) : rendered
    }

    /// A parser failure in words, at its place in the template as the user wrote it.
    static func explain(_ error: MustacheTemplate.ParserError, tags: [TemplateTag]) -> TemplateError {
        let line = max(1, error.context.lineNumber - 1)
        let column = error.context.columnNumber
        let reason: String
        switch error.error as? MustacheTemplate.Error {
        case .sectionCloseNameIncorrect?:
            reason = "a section is closed with a name it was not opened with (each {{#name}} or {{^name}} needs its own {{/name}})"
        case .unfinishedName?:
            reason = "unfinished tag or invalid name (names use letters, digits, '.', '-' and '_'; transforms look like lowercased(data.subject))"
        case .expectedSectionEnd?:
            if let open = unclosedSection(in: tags) {
                return TemplateError(
                    message: "\(open.raw) is never closed (add {{/\(open.nameAndTransforms.name)}})",
                    line: open.line, column: open.column)
            }
            reason = "a section is never closed (add {{/name}})"
        case .invalidSetDelimiter?:
            reason = "invalid set-delimiter tag (write {{=<% %>=}})"
        case .transformAppliedToInheritanceSection?, .illegalTokenInsideInheritSection?, .textInsideInheritSection?:
            reason = "template inheritance is not supported"
        case .invalidConfigVariableSyntax?, .unrecognisedConfigVariable?:
            reason = "pragmas are not supported; the sink decides how values are escaped"
        case nil:
            reason = "unexpected end of the template (a tag opened with {{ is not closed)"
        }
        return TemplateError(message: reason, line: line, column: column)
    }

    /// The innermost section still open at the end, from the scanned tags.
    static func unclosedSection(in tags: [TemplateTag]) -> TemplateTag? {
        var open: [TemplateTag] = []
        for tag in tags {
            switch tag.kind {
            case .section, .inverted, .parent, .block: open.append(tag)
            case .close: if !open.isEmpty { open.removeLast() }
            default: break
            }
        }
        return open.last
    }
}
