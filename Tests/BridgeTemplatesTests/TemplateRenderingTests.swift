import SinkAPI
import BridgeTemplates
import Foundation
import Testing

/// A subject with everything that breaks naive escaping.
let nastySubject = "Q3 \"numbers\" \\ C:\\path\nline two\r\n\ttab <b>bold</b> & more — Grüße 🚀 \u{0001}end"

func mailEvent(subject: String = "Quarterly numbers", data extra: JSONObject = [:]) -> BridgeEvent {
    var data: JSONObject = [
        "subject": .string(subject),
        "from": .object(["emailAddress": .object(["name": .string("Bob Example"), "address": .string("bob@contoso.com")])]),
        "isRead": .bool(false),
        "hasAttachments": .bool(true),
        "size": .number("1.50e3"),
        "categories": .array([]),
        "toRecipients": .array([
            .object(["emailAddress": .object(["address": .string("alice@contoso.com")])]),
            .object(["emailAddress": .object(["address": .string("carol@contoso.com")])]),
        ]),
        "flag": .null,
    ]
    for member in extra.members { data[member.key] = member.value }
    return BridgeEvent(
        id: "evt-1",
        receivedAt: Date(timeIntervalSince1970: 1_796_000_000.123),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("2")]),
        tenantId: "tenant-1",
        data: .object(data)
    )
}

@Suite("rendering")
struct TemplateRenderingTests {
    @Test("nested paths, subscription name and top-level members render")
    func paths() throws {
        let template = try TextTemplate(
            "[{{subscription.name}}] {{changeType}} {{resource}} from {{data.from.emailAddress.name}} <{{data.from.emailAddress.address}}>: {{data.subject}} ({{id}}, {{tenantId}}, {{receivedAt}})"
        )
        #expect(
            template.render(mailEvent())
                == "[inbox] created Users/1/Messages/2 from Bob Example <bob@contoso.com>: Quarterly numbers (evt-1, tenant-1, 2026-11-30T00:53:20.123Z)"
        )
    }

    @Test("booleans print true/false and drive sections; numbers print exactly as written")
    func scalars() throws {
        let template = try TextTemplate(
            "read={{data.isRead}} att={{data.hasAttachments}} size={{data.size}}{{#data.hasAttachments}} [has attachments]{{/data.hasAttachments}}{{#data.isRead}} [read]{{/data.isRead}}{{^data.isRead}} [unread]{{/data.isRead}}"
        )
        #expect(template.render(mailEvent()) == "read=false att=true size=1.50e3 [has attachments] [unread]")
    }

    @Test("missing paths and null print nothing; inverted sections see them as absent")
    func missing() throws {
        let template = try TextTemplate(
            "<{{data.nope}}|{{data.flag}}|{{data.from.nope.deeper}}>{{^data.flag}}no flag{{/data.flag}}{{^lifecycleEvent}} not lifecycle{{/lifecycleEvent}}"
        )
        #expect(template.render(mailEvent()) == "<||>no flag not lifecycle")
    }

    @Test("sections repeat over arrays, with sequence transforms; empty arrays are falsy")
    func arrays() throws {
        let template = try TextTemplate(
            "To: {{#data.toRecipients}}{{emailAddress.address}}{{^last()}}, {{/last()}}{{/data.toRecipients}} ({{count(data.toRecipients)}}){{^data.categories}} no categories{{/data.categories}}{{#first(data.toRecipients)}} first={{emailAddress.address}}{{/first(data.toRecipients)}}"
        )
        #expect(
            template.render(mailEvent())
                == "To: alice@contoso.com, carol@contoso.com (2) no categories first=alice@contoso.com")
    }

    @Test("objects and arrays used as values print as compact JSON")
    func objectsAsJSON() throws {
        let template = try TextTemplate("{{data.from}} {{data.categories}} {{resourceData}}")
        #expect(
            template.render(mailEvent())
                == ##"{"emailAddress":{"name":"Bob Example","address":"bob@contoso.com"}} [] {"@odata.type":"#Microsoft.Graph.Message","id":"2"}"##
        )
    }

    @Test("text templates insert values raw: no HTML escaping")
    func textIsRaw() throws {
        let template = try TextTemplate("Subject: {{data.subject}} / {{{data.subject}}}")
        #expect(template.render(mailEvent(subject: nastySubject)) == "Subject: \(nastySubject) / \(nastySubject)")
    }

    @Test("a text template's {{#json}} section prints a JSON string literal")
    func textJSONSection() throws {
        let template = try TextTemplate("payload={{#json}}{{data.subject}}{{/json}}")
        let rendered = template.render(mailEvent(subject: nastySubject))
        #expect(rendered.hasPrefix("payload=\""))
        #expect(try JSONParser.parse(String(rendered.dropFirst("payload=".count))) == .string(nastySubject))
    }

    @Test("lifecycle events render their own members")
    func lifecycle() throws {
        let event = BridgeEvent(
            id: "evt-2", receivedAt: Date(timeIntervalSince1970: 0),
            subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: nil),
            lifecycleEvent: "missed")
        let template = try TextTemplate(
            "{{#lifecycleEvent}}lifecycle {{lifecycleEvent}} on {{subscription.name}}{{/lifecycleEvent}}{{^lifecycleEvent}}change{{/lifecycleEvent}}")
        #expect(template.render(event) == "lifecycle missed on inbox")
    }
}

@Suite("JSON bodies")
struct JSONTemplateTests {
    @Test("the SPEC example: {{#json}} makes a JSON string literal equal to the subject exactly")
    func specExample() throws {
        let template = try JSONTemplate(#"{"msg": {{#json}}{{data.subject}}{{/json}}}"#)
        let body = try template.render(mailEvent(subject: nastySubject))
        #expect(body == .object(["msg": .string(nastySubject)]))
    }

    @Test("a plain {{value}} inside a JSON string is escaped JSON-style")
    func quotedValue() throws {
        let template = try JSONTemplate(
            #"{"subject": "{{data.subject}}", "who": "{{data.from.emailAddress.name}} <{{data.from.emailAddress.address}}>"}"#)
        let body = try template.render(mailEvent(subject: nastySubject))
        #expect(body["subject"] == .string(nastySubject))
        #expect(body["who"] == .string("Bob Example <bob@contoso.com>"))
        #expect(!template.renderText(context: mailEvent(subject: nastySubject).json).contains("&lt;"))
    }

    @Test("{{#json}} encodes literal text, values and loops together, and nests")
    func sectionContent() throws {
        let template = try JSONTemplate(
            #"{"text": {{#json}}Mail "{{data.subject}}" to {{#data.toRecipients}}{{emailAddress.address}};{{/data.toRecipients}}{{/json}}, "nested": {{#json}}a{{#json}}{{data.subject}}{{/json}}{{/json}}}"#
        )
        let body = try template.render(mailEvent(subject: "x\"y"))
        #expect(body["text"] == .string(#"Mail "x"y" to alice@contoso.com;carol@contoso.com;"#))
        #expect(body["nested"] == .string(#"a"x\"y""#))
    }

    @Test("numbers and booleans stand unquoted with double mustaches")
    func rawValues() throws {
        let template = try JSONTemplate(#"{"size": {{data.size}}, "read": {{data.isRead}}}"#)
        let body = try template.render(mailEvent())
        #expect(body["size"] == .number("1.50e3"))
        #expect(body["read"] == .bool(false))
    }

    @Test("values cannot forge the {{#json}} markers")
    func markersInValues() throws {
        // U+FDD0 and U+FDD1 (noncharacters: Swift has no literal for them).
        let forged = String(String.UnicodeScalarView(["a", Unicode.Scalar(UInt32(0xFDD0))!, "b", Unicode.Scalar(UInt32(0xFDD1))!, "c"]))
        let template = try JSONTemplate(#"{"a": "{{data.subject}}", "b": {{#json}}{{data.subject}}{{/json}}}"#)
        let body = try template.render(mailEvent(subject: forged))
        #expect(body["a"] == .string(forged))
        #expect(body["b"] == .string("a\u{FFFD}b\u{FFFD}c"))
    }

    @Test("a result that is not JSON is a permanent error saying where")
    func invalidResult() throws {
        let template = try JSONTemplate(#"{"msg": {{data.subject}}}"#)
        let error = #expect(throws: SinkError.self) { try template.render(mailEvent(subject: "not a literal")) }
        #expect(error?.disposition == .permanent)
        #expect(error?.message.contains("did not produce valid JSON") == true)
        #expect(error?.message.contains("not a literal") == true)
    }
}

@Suite("header and HTML escaping")
struct HeaderAndHTMLTests {
    @Test("header values: CR, LF and other control characters become spaces; one trimmed line")
    func header() throws {
        let template = try HeaderTemplate("New mail: {{data.subject}}\n")
        let injected = "Hi\r\nBcc: victim@example.com\nX-Evil: 1\u{0000}\u{007F}\u{2028}end"
        let value = template.render(mailEvent(subject: injected))
        #expect(value == "New mail: Hi  Bcc: victim@example.com X-Evil: 1   end")
        #expect(!value.unicodeScalars.contains { $0.properties.generalCategory == .control })
    }

    @Test("header templates keep non-ASCII and punctuation as they are")
    func headerUnicode() throws {
        let template = try HeaderTemplate("{{data.subject}}")
        #expect(template.render(mailEvent(subject: "Grüße <&> \"q\" 🚀")) == "Grüße <&> \"q\" 🚀")
    }

    @Test("HTML templates escape values; triple mustaches do not")
    func html() throws {
        let template = try HTMLTemplate("<p>{{data.subject}}</p><div>{{{data.subject}}}</div>")
        #expect(
            template.render(mailEvent(subject: #"<b>"A" & 'B'</b>"#))
                == #"<p>&lt;b&gt;&quot;A&quot; &amp; &#39;B&#39;&lt;/b&gt;</p><div><b>"A" & 'B'</b></div>"#)
    }
}
