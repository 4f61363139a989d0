import Testing

@testable import BridgeConfig

@Suite("Parsing YAML into nodes")
struct ParsingTests {
    @Test("scalars keep their raw text, quoting and 1-based marks")
    func scalarsAndMarks() throws {
        let document = try parse(
            "port: 8080\nname: \"8080\"\nflag: 'true'\nempty:\nblock: |\n  text\ntagged: !!str 12\n")
        guard case .mapping(let entries, let rootMark) = document.root else {
            Issue.record("root is not a mapping")
            return
        }
        #expect(rootMark == mark(1, 1))
        #expect(entries.map(\.key) == ["port", "name", "flag", "empty", "block", "tagged"])
        #expect(entries[5].value == .scalar("12", quoted: true, mark: mark(7, 9)))
        #expect(entries[0].keyMark == mark(1, 1))
        #expect(entries[0].value == .scalar("8080", quoted: false, mark: mark(1, 7)))
        #expect(entries[1].value == .scalar("8080", quoted: true, mark: mark(2, 7)))
        #expect(entries[2].value == .scalar("true", quoted: true, mark: mark(3, 7)))
        #expect(entries[3].value.isNull)
        #expect(entries[3].value.mark.line == 4)
        #expect(entries[4].value == .scalar("text\n", quoted: true, mark: mark(5, 8)))
    }

    @Test("an empty file, or one with only comments, is an empty mapping")
    func emptyFile() throws {
        for text in ["", "# nothing here\n", "---\n"] {
            let document = try parse(text)
            guard case .mapping(let entries, _) = document.root else {
                Issue.record("root of \(text.debugDescription) is not a mapping")
                continue
            }
            #expect(entries.isEmpty)
        }
    }

    @Test("a syntax error carries libyaml's problem and its mark, 1-based")
    func syntaxError() throws {
        let error = try #require(
            parseFailure(
                """
                graph:
                  tenant: contoso
                  url: a: b
                """
            )
        )
        #expect(error.mark == mark(3, 9))
        #expect(error.message == "mapping values are not allowed in this context")
        #expect(error.description == "bridge.yaml:3:9: mapping values are not allowed in this context")
    }

    @Test("the field-notes example: a value continued on an over-indented line")
    func mappingValuesNotAllowed() throws {
        let error = try #require(parseFailure("a: 1\nb: 2\n  c: 3\n"))
        #expect(error.description == "bridge.yaml:3:4: mapping values are not allowed in this context")
    }

    @Test("an unclosed flow sequence names where it started")
    func unclosedFlowSequence() throws {
        let error = try #require(parseFailure("to: [chat, audit\n"))
        #expect(error.mark == mark(2, 1))
        #expect(error.message.hasPrefix("did not find expected ',' or ']'"))
        #expect(error.message.contains("line 1, column 5"))
    }

    @Test("a tab used for indentation is reported at the tab")
    func tabIndentation() throws {
        let error = try #require(parseFailure("graph:\n\ttenant: x\n"))
        #expect(error.mark == mark(2, 1))
        #expect(error.message.contains("cannot start any token"))
        #expect(error.message.contains("indent with spaces"))
    }

    @Test("duplicate keys are an error at the second key")
    func duplicateKey() throws {
        let error = try #require(
            parseFailure(
                """
                graph:
                  tenant: a
                  clientId: b
                  tenant: c
                """
            )
        )
        #expect(error.mark == mark(4, 3))
        #expect(error.message.hasPrefix("duplicate key 'tenant'"))
        #expect(error.message.contains("line 2, column 3"))
    }

    @Test("a second document in the file is an error at its start")
    func multipleDocuments() throws {
        let error = try #require(parseFailure("a: 1\n---\nb: 2\n"))
        #expect(error.mark == mark(2, 1))
        #expect(error.message.contains("second YAML document"))
    }

    @Test("invalid UTF-8 is an error at the offending byte, not a crash")
    func invalidUTF8() throws {
        let bytes = Array("graph:\n  tenant: ab".utf8) + [0xFF, 0xFE] + Array("\n".utf8)
        #expect(throws: ConfigError.self) { try ConfigDocument.parse(bytes: bytes, file: "bad.yaml", directory: "/") }
        do {
            _ = try ConfigDocument.parse(bytes: bytes, file: "bad.yaml", directory: "/")
        } catch {
            #expect(error.mark == mark(2, 13))
            #expect(error.message.contains("UTF-8"))
            #expect(error.description.hasPrefix("bad.yaml:2:13: "))
        }
    }

    @Test("a control character is an error at its position")
    func controlCharacter() throws {
        let bytes = Array("a: 1\nb: x".utf8) + [0x00] + Array("y\n".utf8)
        do {
            _ = try ConfigDocument.parse(bytes: bytes, file: "bad.yaml", directory: "/")
            Issue.record("a NUL byte was accepted")
        } catch {
            #expect(error.mark == mark(2, 5))
            #expect(error.message.contains("control characters are not allowed"))
        }
    }

    @Test("deep nesting is refused with an error instead of exhausting the stack")
    func deepNesting() throws {
        let depth = 100_000
        let error = try #require(
            parseFailure("a: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth)))
        #expect(error.message.contains("nesting is deeper than"))
        #expect(error.mark?.line == 1)
    }

    @Test("nesting within the limit is fine")
    func moderateNesting() throws {
        let depth = 50
        let document = try parse(
            "a: " + String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth))
        var node = try #require(document.root["a"])
        for _ in 0..<depth {
            node = try #require(node.items?.first)
        }
        #expect(node.scalarText == "1")
    }

    @Test("exponential alias expansion (billion laughs) is refused")
    func aliasBomb() throws {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let previous = "*a\(level - 1)"
            yaml += "a\(level): &a\(level) [\(Array(repeating: previous, count: 10).joined(separator: ", "))]\n"
        }
        let error = try #require(parseFailure(yaml))
        #expect(error.message.contains("aliases expand to more than"))
    }

    @Test("a huge scalar is just a scalar")
    func hugeScalar() throws {
        let big = String(repeating: "x", count: 2_000_000)
        let document = try parse("text: \(big)\n")
        #expect(document.root["text"]?.scalarText?.count == big.count)
    }

    @Test("an undefined alias is an error at the alias")
    func undefinedAlias() throws {
        let error = try #require(parseFailure("a: 1\nb: *nothing\n"))
        #expect(error.mark == mark(2, 4))
        #expect(error.message.contains("unknown anchor 'nothing'"))
    }

    @Test("a list used as a key is refused")
    func complexKey() throws {
        let error = try #require(parseFailure("? [a, b]\n: 1\n"))
        #expect(error.mark == mark(1, 3))
        #expect(error.message.contains("mapping key must be a plain value"))
    }

    @Test("load: an unreadable file is an error without a mark")
    func unreadableFile() throws {
        let path = "/nonexistent-\(UInt64.random(in: 0...UInt64.max))/bridge.yaml"
        do {
            _ = try ConfigDocument.load(path: path)
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect(error.mark == nil)
            #expect(error.file == path)
            #expect(error.description == "\(path): cannot read the config file: No such file or directory")
        }
    }

    @Test("load: reads the file, keeps the path as given and makes the folder absolute")
    func loadFile() throws {
        let directory = "/tmp/bridge-config-tests-\(UInt64.random(in: 0...UInt64.max))"
        let path = directory + "/sub/../bridge.yaml"
        try TemporaryFiles.write("graph:\n  tenant: contoso\n", to: directory + "/bridge.yaml")
        try TemporaryFiles.write("", to: directory + "/sub/placeholder")
        defer { TemporaryFiles.remove(directory) }
        let document = try ConfigDocument.load(path: path)
        #expect(document.file == path)
        #expect(document.directory == directory)
        #expect(document.root["graph"]?["tenant"]?.scalarText == "contoso")
    }

    @Test("load: invalid UTF-8 in a file is a ConfigError")
    func loadInvalidUTF8() throws {
        let directory = "/tmp/bridge-config-tests-\(UInt64.random(in: 0...UInt64.max))"
        try TemporaryFiles.write(bytes: [0x61, 0x3A, 0x20, 0xC3, 0x28, 0x0A], to: directory + "/bad.yaml")
        defer { TemporaryFiles.remove(directory) }
        do {
            _ = try ConfigDocument.load(path: directory + "/bad.yaml")
            Issue.record("invalid UTF-8 was accepted")
        } catch {
            #expect(error.mark == mark(1, 5))  // libyaml points at the bad continuation byte
            #expect(error.message.contains("UTF-8"))
        }
    }
}
