import Testing

@testable import BridgeConfig

@Suite("Unknown keys")
struct UnknownKeyTests {
    @Test("an unknown key close to a known one gets a did-you-mean, at the key's mark")
    func didYouMean() throws {
        let (_, unknown) = try decodeChecked(
            RootConfig.self,
            """
            graph:
              tenant: contoso
              clientid: abc
              clientSecrte: x
            """
        )
        #expect(
            unknown.map(\.description) == [
                "bridge.yaml:3:3: unknown key 'clientid' in graph (did you mean 'clientId'?)",
                "bridge.yaml:4:3: unknown key 'clientSecrte' in graph (did you mean 'clientSecret'?)",
            ]
        )
    }

    @Test("a misspelt required key: the missing-key error, and the did-you-mean once decoding is over")
    func tenat() throws {
        let document = try parse("graph:\n  tenat: contoso\n")
        let decoder = ConfigDecoder(document: document, environment: [:])
        #expect(throws: ConfigError.self) { try decoder.decode(RootConfig.self) }
        #expect(
            decoder.unknownKeyErrors().map(\.description) == [
                "bridge.yaml:2:3: unknown key 'tenat' in graph (did you mean 'tenant'?)"
            ]
        )
    }

    @Test("no suggestion when nothing is close; top-level keys have no path")
    func noSuggestion() throws {
        let (_, unknown) = try decodeChecked(
            RootConfig.self,
            """
            graph: { tenant: x }
            telemetry: on
            """
        )
        #expect(unknown == [ConfigError(file: "bridge.yaml", mark: mark(2, 1), message: "unknown key 'telemetry'")])
    }

    @Test("keys of a mapping under an unknown key are not reported twice")
    func nestedUnderUnknown() throws {
        let (_, unknown) = try decodeChecked(RootConfig.self, "graph: { tenant: x }\nextra:\n  deeper: 1\n")
        #expect(unknown.map(\.message) == ["unknown key 'extra'"])
    }

    @Test("two decodes of one node: keys asked by either count as known")
    func twoDecoders() throws {
        struct SinkEntry: Decodable {
            var type: String
            var node: ConfigNode
            enum CodingKeys: String, CodingKey { case type }
            init(from decoder: any Decoder) throws {
                type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
                node = try #require(decoder.configNode)
            }
        }
        struct WebhookOptions: Decodable { var url: String; var timeout: ConfigDuration? }
        struct Config: Decodable { var sinks: [String: SinkEntry] }

        let document = try parse(
            """
            sinks:
              chat:
                type: webhook
                url: https://chat
                timout: 5s
            """
        )
        let core = ConfigDecoder(document: document, environment: [:])
        let config = try core.decode(Config.self)
        let chat = try #require(config.sinks["chat"])
        #expect(chat.type == "webhook")

        // Before the sink reads its keys, they are all unknown.
        #expect(
            core.unknownKeyErrors().map(\.message).sorted() == [
                "unknown key 'timout' in sinks.chat", "unknown key 'url' in sinks.chat",
            ])

        // The sink's own decode (here through a second decoder over the same document) asks for the rest.
        let sink = ConfigDecoder(document: document, environment: [:])
        let options = try sink.decode(WebhookOptions.self, from: chat.node)
        #expect(options.url == "https://chat")
        #expect(
            core.unknownKeyErrors().map(\.description) == [
                "bridge.yaml:5:5: unknown key 'timout' in sinks.chat (did you mean 'timeout'?)"
            ]
        )
        #expect(sink.unknownKeyErrors() == core.unknownKeyErrors())
    }

    @Test("a node decoded later keeps its path in messages")
    func laterDecodeKeepsPath() throws {
        struct Config: Decodable { var sinks: [String: ConfigNode] }
        struct Options: Decodable { var port: Int }
        let document = try parse("sinks:\n  chat:\n    port: many\n")
        let decoder = ConfigDecoder(document: document, environment: [:])
        let node = try #require(try decoder.decode(Config.self).sinks["chat"])
        do {
            _ = try decoder.decode(Options.self, from: node)
            Issue.record("decoding 'many' as an integer succeeded")
        } catch let error as ConfigError {
            #expect(error.description == "bridge.yaml:3:11: expected an integer, found 'many' in sinks.chat.port")
        }
    }

    @Test("probing a node's shape through configNode leaves unknown-key tracking alone")
    func probing() throws {
        indirect enum MatchValue: Decodable, Equatable {
            case string(String)
            case list([String])
            case regex(String)
            case not(MatchValue)

            enum Keys: String, CodingKey { case regex, not }

            init(from decoder: any Decoder) throws {
                switch decoder.configNode {
                case .sequence?:
                    self = .list(try decoder.singleValueContainer().decode([String].self))
                case .mapping?:
                    let container = try decoder.container(keyedBy: Keys.self)
                    if container.contains(.regex) {
                        self = .regex(try container.decode(String.self, forKey: .regex))
                    } else if container.contains(.not) {
                        self = .not(try container.decode(MatchValue.self, forKey: .not))
                    } else {
                        throw decoder.configError("a matcher mapping needs 'regex' or 'not'")
                    }
                default:
                    self = .string(try decoder.singleValueContainer().decode(String.self))
                }
            }
        }
        struct Route: Decodable { var match: [String: MatchValue] }

        let (route, unknown) = try decodeChecked(
            Route.self,
            """
            match:
              subscription: inbox
              changeType: [created, updated]
              resource: { regex: '^users/.*' }
              lifecycleEvent: { not: { regex: missed, flags: i } }
            """
        )
        #expect(route.match["subscription"] == .string("inbox"))
        #expect(route.match["changeType"] == .list(["created", "updated"]))
        #expect(route.match["resource"] == .regex("^users/.*"))
        #expect(route.match["lifecycleEvent"] == .not(.regex("missed")))
        #expect(unknown.map(\.description) == ["bridge.yaml:5:43: unknown key 'flags' in match.lifecycleEvent.not"])

        let error = try #require(failure(Route.self, "match:\n  x: { neither: 1 }\n"))
        #expect(
            error
                == ConfigError(
                    file: "bridge.yaml", mark: mark(2, 6), message: "a matcher mapping needs 'regex' or 'not'"))
    }

    @Test("suggestions: case-insensitive equality first, then edit distance up to 2")
    func suggestions() {
        #expect(KeyTracker.suggestion(for: "clientid", among: ["tenant", "clientId"]) == "clientId")
        #expect(KeyTracker.suggestion(for: "tenat", among: ["tenant", "clientId"]) == "tenant")
        #expect(KeyTracker.suggestion(for: "tnat", among: ["tenant"]) == "tenant")
        #expect(KeyTracker.suggestion(for: "tn", among: ["tenant"]) == nil)
        #expect(KeyTracker.suggestion(for: "to", among: ["id"]) == nil)
        #expect(KeyTracker.editDistance("kitten", "sitting") == 3)
    }

    @Test("ConfigErrors sorts by position and prints one line per error")
    func configErrors() {
        let errors = ConfigErrors([
            ConfigError(file: "b.yaml", mark: mark(3, 1), message: "three"),
            ConfigError(file: "b.yaml", mark: mark(1, 9), message: "one"),
            ConfigError(file: "b.yaml", mark: nil, message: "file"),
            ConfigError(file: "b.yaml", mark: mark(1, 9), message: "one"),
        ])
        #expect(errors.description == "b.yaml: file\nb.yaml:1:9: one\nb.yaml:3:1: three")
    }
}
