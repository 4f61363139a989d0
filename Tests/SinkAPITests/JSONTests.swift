import SinkAPI
import Testing

@Suite("JSON parser and writer")
struct JSONTests {
    @Test("keeps member order, number text and non-ASCII through a round trip")
    func roundTrip() throws {
        let text = #"{"z":1,"a":[true,false,null],"n":-12.50e+3,"s":"Grüße \"quoted\" \\ \n\t","e":{}}"#
        let value = try JSONParser.parse(text)
        #expect(value.objectValue?.keys == ["z", "a", "n", "s", "e"])
        #expect(value["n"] == .number("-12.50e+3"))
        #expect(value["s"]?.stringValue == "Grüße \"quoted\" \\ \n\t")
        #expect(value.serializedString == text)
    }

    @Test("decodes \\u escapes including surrogate pairs")
    func unicodeEscapes() throws {
        let value = try JSONParser.parse(#"["\u00e9\ud83d\ude00\u0041"]"#)
        #expect(value.arrayValue?.first?.stringValue == "é😀A")
    }

    @Test("escapes control characters when writing")
    func writesControlCharacters() {
        let value = JSONValue.string("a\u{01}b\u{1F}")
        #expect(value.serializedString == #""a\u0001b\u001f""#)
    }

    @Test("writes escapes at the start, between and at the end of plain runs, and strings that are all escapes or empty")
    func writesRunsAndEscapes() throws {
        let cases: [(String, String)] = [
            ("", #""""#),
            ("\"", #""\"""#),
            ("\n\\\"", #""\n\\\"""#),
            ("\"Grüße\"", #""\"Grüße\"""#),
            ("a\tb\u{7F}c\u{0}", "\"a\\tb\u{7F}c\\u0000\""),
            ("plain 😀 text", #""plain 😀 text""#),
        ]
        for (string, written) in cases {
            #expect(JSONValue.string(string).serializedString == written)
            #expect(try JSONParser.parse(written) == .string(string))
        }
    }

    @Test("rejects malformed input with an offset", arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"unterminated", "{} x", "\"\u{01}\"", "[\"\\ud800\"]", "{\"a\":1,}",
    ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("rejects invalid UTF-8 inside strings")
    func rejectsInvalidUTF8() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test("refuses nesting deeper than the limit instead of overflowing the stack")
    func depthLimit() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }

    @Test("object subscript replaces in place and appends new members last")
    func objectEditing() {
        var object: JSONObject = ["a": .number("1"), "b": .number("2")]
        object["a"] = .string("x")
        object["c"] = .null
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == .string("x"))
    }
}
