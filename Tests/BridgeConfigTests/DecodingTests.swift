import Foundation
import Testing

@testable import BridgeConfig

@Suite("Decoding Decodable types")
struct DecodingTests {
    @Test("nested types, optionals and scalars decode")
    func nested() throws {
        let config = try decode(
            RootConfig.self,
            """
            graph:
              tenant: contoso.onmicrosoft.com
              clientId: "11111111"
            server:
              listen: 0.0.0.0:8080
              port: "8081"
              maxBodyBytes: 1MiB
            """
        )
        #expect(
            config.graph == GraphSection(tenant: "contoso.onmicrosoft.com", clientId: "11111111", clientSecret: nil))
        #expect(config.server?.port == 8081)
        #expect(config.server?.maxBodyBytes == ConfigByteSize(bytes: 1 << 20))
    }

    @Test("a wrong type is an error at the value, with the path")
    func wrongType() throws {
        let error = try #require(
            failure(
                RootConfig.self,
                """
                graph:
                  tenant: contoso
                server:
                  listen: 0.0.0.0:8080
                  port: abc
                """
            )
        )
        #expect(error.mark == mark(5, 9))
        #expect(error.message == "expected an integer, found 'abc' in server.port")
        #expect(error.description == "bridge.yaml:5:9: expected an integer, found 'abc' in server.port")
    }

    @Test("an integer out of range says the range")
    func integerOutOfRange() throws {
        struct Small: Decodable { var level: UInt8 }
        let error = try #require(failure(Small.self, "level: 300\n"))
        #expect(error.mark == mark(1, 8))
        #expect(error.message == "expected an integer from 0 to 255, found '300' in level")
    }

    @Test("integers in hex and with signs; floats with exponents and .inf")
    func numbers() throws {
        struct Numbers: Decodable { var a: Int; var b: Int; var c: Double; var d: Double; var e: Float }
        let numbers = try decode(Numbers.self, "a: 0x1F\nb: -42\nc: 1.5e3\nd: -.inf\ne: '2.5'\n")
        #expect(numbers.a == 31)
        #expect(numbers.b == -42)
        #expect(numbers.c == 1500)
        #expect(numbers.d == -.infinity)
        #expect(numbers.e == 2.5)
    }

    @Test("a missing required key is an error at the mapping that lacks it")
    func missingKey() throws {
        let error = try #require(
            failure(
                RootConfig.self,
                """
                # comment
                graph:
                  clientId: abc
                  clientSecret: def
                """
            )
        )
        #expect(error.mark == mark(3, 3))
        #expect(error.message == "missing required key 'tenant' in graph")
    }

    @Test("a missing top-level key names no path")
    func missingTopLevelKey() throws {
        let error = try #require(failure(RootConfig.self, "server:\n  listen: x\n"))
        #expect(error.mark == mark(1, 1))
        #expect(error.message == "missing required key 'graph'")
    }

    @Test("a mapping where a list is expected, and a list where a mapping is expected")
    func shapeMismatch() throws {
        struct Routes: Decodable { var to: [String] }
        let error = try #require(failure(Routes.self, "to:\n  chat: 1\n"))
        #expect(error.mark == mark(2, 3))
        #expect(error.message == "expected a list, found a mapping in to")

        let other = try #require(failure(RootConfig.self, "graph: [a, b]\n"))
        #expect(other.mark == mark(1, 8))
        #expect(other.message == "expected a mapping, found a list in graph")
    }

    @Test("list paths use [index] in messages")
    func listPath() throws {
        struct Match: Decodable { var count: Int }
        struct Route: Decodable { var match: Match }
        struct Config: Decodable { var routes: [Route] }
        let error = try #require(
            failure(
                Config.self,
                """
                routes:
                  - match: { count: 1 }
                  - match: { count: 2 }
                  - match: { count: many }
                """
            )
        )
        #expect(error.mark == mark(4, 21))
        #expect(error.message == "expected an integer, found 'many' in routes[2].match.count")
    }

    @Test("only true and false are booleans; yes gets a hint")
    func booleans() throws {
        struct Flags: Decodable { var a: Bool; var b: Bool }
        let flags = try decode(Flags.self, "a: true\nb: 'false'\n")
        #expect(flags.a == true)
        #expect(flags.b == false)

        let error = try #require(failure(Flags.self, "a: yes\nb: false\n"))
        #expect(error.mark == mark(1, 4))
        #expect(error.message.hasPrefix("expected true or false, found 'yes'"))
        #expect(error.message.contains("only true and false"))
    }

    @Test("a key with no value is not a string, but is nil for an optional")
    func nullValues() throws {
        let error = try #require(failure(GraphSection.self, "tenant:\nclientId: x\n"))
        #expect(error.mark == mark(1, 8))
        #expect(error.message.hasPrefix("expected a string, found null"))

        let section = try decode(GraphSection.self, "tenant: ''\nclientId: ~\nclientSecret: null\n")
        #expect(section.tenant == "")
        #expect(section.clientId == nil)
        #expect(section.clientSecret == nil)

        let quoted = try decode(GraphSection.self, "tenant: 'null'\nclientId: \"~\"\n")
        #expect(quoted.tenant == "null")
        #expect(quoted.clientId == "~")
    }

    @Test("dictionaries take every key, in a mapping of any keys")
    func dictionaries() throws {
        struct Sink: Decodable { var type: String }
        struct Config: Decodable { var sinks: [String: Sink] }
        let (config, unknown) = try decodeChecked(
            Config.self,
            """
            sinks:
              console: { type: stdout }
              audit: { type: file }
            """
        )
        #expect(config.sinks.keys.sorted() == ["audit", "console"])
        #expect(config.sinks["audit"]?.type == "file")
        #expect(unknown.isEmpty)
    }

    @Test("string enums list the allowed values, with ConfigEnum and with plain CaseIterable")
    func enums() throws {
        enum Format: String, ConfigEnum { case text, json }
        enum Cloud: String, Decodable, CaseIterable { case global, usgov, china }
        struct Sink: Decodable { var format: Format; var cloud: Cloud? }

        let sink = try decode(Sink.self, "format: json\ncloud: china\n")
        #expect(sink.format == .json)
        #expect(sink.cloud == .china)

        let error = try #require(failure(Sink.self, "format: xml\n"))
        #expect(error.mark == mark(1, 9))
        #expect(error.message == "expected one of text, json; found 'xml' in format")

        let other = try #require(failure(Sink.self, "format: text\ncloud: mars\n"))
        #expect(other.mark == mark(2, 8))
        #expect(other.message == "expected one of global, usgov, china; found 'mars' in cloud")
    }

    @Test("ConfigEnum's own init(from:) is the one used, also through other decoders")
    func configEnumInit() throws {
        enum Format: String, ConfigEnum { case text, json }
        do {
            _ = try JSONDecoder().decode([Format].self, from: Data(#"["xml"]"#.utf8))
            Issue.record("decoding 'xml' succeeded")
        } catch DecodingError.dataCorrupted(let context) {
            #expect(context.debugDescription == "expected one of text, json; found 'xml'")
        }
        let error = try #require(failure([String: Format].self, "console: { a: 1 }\n"))
        #expect(error.mark == mark(1, 10))
        #expect(error.message == "expected one of text, json, found a mapping in console")
    }

    @Test("recursive types decode to the nesting limit without exhausting the stack")
    func deepRecursiveDecode() throws {
        indirect enum Chain: Decodable {
            case end
            case next(Chain)
            enum Keys: CodingKey { case next }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: Keys.self)
                self = try container.decodeIfPresent(Chain.self, forKey: .next).map(Chain.next) ?? .end
            }
            var depth: Int {
                var depth = 0
                var current = self
                while case .next(let inner) = current {
                    depth += 1
                    current = inner
                }
                return depth
            }
        }
        let levels = YAMLTreeBuilder.maximumDepth - 1
        let yaml = String(repeating: "{next: ", count: levels) + "{}" + String(repeating: "}", count: levels)
        #expect(try decode(Chain.self, yaml).depth == levels)
    }

    @Test("userInfo reaches init(from:)")
    func userInfo() throws {
        let key = try #require(CodingUserInfoKey(rawValue: "registry"))
        struct Probe: Decodable {
            var seen: String?
            init(from decoder: any Decoder) throws {
                seen = decoder.userInfo[CodingUserInfoKey(rawValue: "registry")!] as? String
            }
        }
        var decoder = ConfigDecoder(document: try parse("a: 1\n"), environment: [:])
        decoder.userInfo[key] = "sinks"
        #expect(try decoder.decode(Probe.self).seen == "sinks")
    }

    @Test("configError thrown from init(from:) surfaces unchanged at the node's position")
    func configErrorFromInit() throws {
        struct Pattern: Decodable {
            var regex: String
            init(from decoder: any Decoder) throws {
                regex = try decoder.singleValueContainer().decode(String.self)
                if regex.contains("(") && !regex.contains(")") {
                    throw decoder.configError("invalid regex '\(regex)': missing )")
                }
            }
        }
        struct Route: Decodable { var pattern: Pattern }
        let error = try #require(failure([Route].self, "- pattern: ok\n- pattern: 'a(b'\n"))
        #expect(error == ConfigError(file: "bridge.yaml", mark: mark(2, 12), message: "invalid regex 'a(b': missing )"))
    }

    @Test("configError from another decoder is a DecodingError")
    func configErrorElsewhere() throws {
        struct Probe: Decodable {
            var error: any Error
            init(from decoder: any Decoder) throws { error = decoder.configError("nope") }
        }
        let probe = try JSONDecoder().decode(Probe.self, from: Data("{}".utf8))
        #expect(probe.error is DecodingError)
    }

    @Test("a custom error thrown from init(from:) becomes a ConfigError at that node")
    func foreignError() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
        struct Exploding: Decodable { init(from decoder: any Decoder) throws { throw Boom() } }
        struct Config: Decodable { var a: Int; var b: Exploding }
        let error = try #require(failure(Config.self, "a: 1\nb:\n  c: 2\n"))
        #expect(error.mark == mark(3, 3))
        #expect(error.message == "boom in b")
    }

    @Test("Swift.Duration fields read unit text")
    func swiftDuration() throws {
        struct Config: Decodable { var timeout: Duration }
        #expect(try decode(Config.self, "timeout: 1m30s\n").timeout == .seconds(90))
    }
}
