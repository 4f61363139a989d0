import SinkAPI
import BridgeTemplates
import Testing

@Suite("compile-time checks")
struct TemplateCompileTests {
    func error(_ source: String, as kind: String = "text") -> TemplateError? {
        do {
            switch kind {
            case "json": _ = try JSONTemplate(source)
            case "header": _ = try HeaderTemplate(source)
            case "html": _ = try HTMLTemplate(source)
            default: _ = try TextTemplate(source)
            }
            return nil
        } catch {
            return error
        }
    }

    @Test("an unknown top-level name is an error with a did-you-mean")
    func unknownName() throws {
        let failure = try #require(error("Mail: {{dat.subject}}"))
        #expect(failure.message.hasPrefix("unknown name 'dat' in {{dat.subject}} (did you mean 'data.subject'?)"))
        #expect(failure.message.contains("id, receivedAt, subscription, changeType, lifecycleEvent, resource, resourceData, tenantId, data"))
        #expect(failure.line == 1 && failure.column == 7)
    }

    @Test("a bare data field suggests the data. prefix; case slips suggest the member")
    func suggestions() throws {
        #expect(error("{{subject}}")?.message.hasPrefix("unknown name 'subject' in {{subject}} (did you mean 'data.subject'?)") == true)
        #expect(error("{{#Subscription}}{{name}}{{/Subscription}}")?.message.contains("did you mean 'subscription'?") == true)
        #expect(error("x\n  {{{changetype}}}")?.line == 2)
        #expect(error("x\n  {{{changetype}}}")?.column == 3)
    }

    @Test("names inside a section over a value are that value's members, and are not checked")
    func scopedNames() throws {
        _ = try TextTemplate("{{#data.from.emailAddress}}{{name}} {{address}}{{/data.from.emailAddress}}")
        _ = try TextTemplate("{{#data.toRecipients}}{{emailAddress.address}}{{^last()}}, {{/last()}}{{/data.toRecipients}}")
        // Inverted sections do not change the context: names inside are checked.
        #expect(error("{{^data.flag}}{{sbuject}}{{/data.flag}}")?.message.contains("unknown name 'sbuject'") == true)
    }

    @Test("syntax errors carry the template's own line and column")
    func syntax() throws {
        let unclosed = try #require(error("Hello\n{{#data.subject}}x"))
        #expect(unclosed.message == "{{#data.subject}} is never closed (add {{/data.subject}})")
        #expect(unclosed.line == 2 && unclosed.column == 1)
        let mismatched = try #require(error("a {{#data}}b{{/date}}"))
        #expect(mismatched.message.contains("closed with a name it was not opened with"))
        #expect(mismatched.line == 1)
        let unfinished = try #require(error("line one\nline {{data.subject"))
        #expect(unfinished.line == 2)
        #expect(unfinished.description.hasSuffix("(template line 2, column \(unfinished.column ?? 0))"))
    }

    @Test("partials, inheritance, pragmas and unknown transforms are refused")
    func unsupported() throws {
        #expect(error("{{> footer}}")?.message.contains("partials") == true)
        #expect(error("{{% CONTENT_TYPE: HTML}}{{data.subject}}")?.message.contains("pragmas are not supported") == true)
        #expect(
            error("{{lowercase(data.subject)}}")?.message.hasPrefix(
                "unknown transform 'lowercase' in {{lowercase(data.subject)}} (did you mean 'lowercased'?)") == true)
        #expect(error("{{uppercased(data.subject)}}") == nil)
    }

    @Test("json is a section of JSON and text templates only")
    func jsonSection() throws {
        #expect(error(#"{"a": {{json}}}"#, as: "json")?.message.contains("json is a section") == true)
        #expect(error("{{#json}}{{data.subject}}{{/json}}", as: "header")?.message.contains("only in JSON and text templates") == true)
        #expect(error("{{#json}}{{data.subject}}{{/json}}", as: "html") != nil)
        #expect(error(#"{"a": {{#json}}{{data.subject}}{{/json}}}"#, as: "json") == nil)
    }

    @Test("unescaped values ({{{ }}} and {{& }}) are refused in JSON templates, at their place, saying to use {{ }}")
    func unescapedInJSON() throws {
        let triple = try #require(error(#"{"a": 1,"# + "\n" + #" "b": "{{{data.subject}}}"}"#, as: "json"))
        #expect(triple.line == 2 && triple.column == 8)
        #expect(triple.message.hasPrefix("{{{data.subject}}}: unescaped values are not allowed in a JSON template; write {{data.subject}} instead"))
        let ampersand = try #require(error(#"{"from": {{& data.from}}}"#, as: "json"))
        #expect(ampersand.line == 1 && ampersand.column == 10)
        #expect(ampersand.message.contains("write {{data.from}} instead"))
        // Inside a {{#json}} section too: it renders into the document as well.
        #expect(error(#"{"a": {{#json}}{{{data.subject}}}{{/json}}}"#, as: "json") != nil)
        // Other kinds keep them: HTML's raw insertion, text (where they change nothing).
        #expect(error("<p>{{{data.subject}}}</p>", as: "html") == nil)
        #expect(error("{{& data.subject}}") == nil)
    }

    @Test("custom delimiters are followed by the name check")
    func delimiters() throws {
        #expect(try TextTemplate("{{=<% %>=}}<% data.subject %>").render(mailEvent(subject: "s")) == "s")
        #expect(error("{{=<% %>=}}<% dta.subject %>")?.message.contains("did you mean 'data.subject'?") == true)
    }

    @Test("a leading newline and indentation are kept")
    func leadingWhitespace() throws {
        #expect(try TextTemplate("\n  {{data.subject}}").render(mailEvent(subject: "s")) == "\n  s")
    }
}

@Suite("decoding from bridge.yaml")
struct TemplateDecodingTests {
    struct Keys: Decodable {
        var text: TextTemplate
        var body: JSONTemplate?
        var subject: HeaderTemplate?
        var html: HTMLTemplate?
    }

    func decode(_ yaml: String, environment: [String: String] = [:]) throws -> Keys {
        let document = try ConfigDocument.parse(yaml, file: "bridge.yaml", directory: "/tmp")
        return try ConfigDecoder(document: document, environment: environment).decode(Keys.self)
    }

    @Test("templates decode and compile, after ${VAR} substitution")
    func decodes() throws {
        let keys = try decode(
            """
            text: "{{data.subject}} for ${TEAM}"
            body: '{"msg": {{#json}}{{data.subject}}{{/json}}}'
            subject: "New: {{data.subject}}"
            html: "<b>{{data.subject}}</b>"
            """, environment: ["TEAM": "ops"])
        let event = mailEvent(subject: "<x>")
        #expect(keys.text.render(event) == "<x> for ops")
        #expect(try keys.body?.render(event) == .object(["msg": .string("<x>")]))
        #expect(keys.subject?.render(event) == "New: <x>")
        #expect(keys.html?.render(event) == "<b>&lt;x&gt;</b>")
    }

    @Test("a bad template is a config error at its value, FILE:LINE:COL: invalid template: ...")
    func badTemplate() throws {
        let thrown = #expect(throws: ConfigError.self) {
            try decode(
                """
                text: "fine {{data.subject}}"
                body: '{"msg": "{{dat.subject}}"}'
                """)
        }
        let error = try #require(thrown)
        #expect(error.mark == ConfigMark(line: 2, column: 7))
        #expect(
            error.description.hasPrefix(
                "bridge.yaml:2:7: invalid template: unknown name 'dat' in {{dat.subject}} (did you mean 'data.subject'?)"))
        #expect(error.description.hasSuffix("(template line 1, column 10)"))
    }

    @Test("an unescaped value in a JSON body is a config error at the body, with its line inside the template")
    func unescapedBody() throws {
        let thrown = #expect(throws: ConfigError.self) {
            try decode(
                """
                text: "fine"
                body: |
                  {"msg": "hello",
                   "subject": "{{{data.subject}}}"}
                """)
        }
        let error = try #require(thrown)
        #expect(error.mark == ConfigMark(line: 2, column: 7))
        #expect(error.description.hasPrefix("bridge.yaml:2:7: invalid template: {{{data.subject}}}: unescaped values are not allowed"))
        #expect(error.description.contains("write {{data.subject}} instead"))
        #expect(error.description.hasSuffix("(template line 2, column 14)"))
    }

    @Test("a syntax error in a block scalar reports the template's line inside the block")
    func blockScalar() throws {
        let thrown = #expect(throws: ConfigError.self) {
            try decode(
                """
                text: |
                  Hello
                  {{#data.toRecipients}}{{emailAddress.address}}
                """)
        }
        let error = try #require(thrown)
        #expect(error.mark == ConfigMark(line: 1, column: 7))
        #expect(error.message == "invalid template: {{#data.toRecipients}} is never closed (add {{/data.toRecipients}}) (template line 2, column 1)")
    }
}
