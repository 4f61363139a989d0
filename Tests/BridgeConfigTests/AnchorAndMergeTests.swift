import Testing

@testable import BridgeConfig

@Suite("Anchors, aliases and merge keys")
struct AnchorAndMergeTests {
    struct Retry: Decodable, Equatable {
        var initialBackoff: ConfigDuration
        var maxAge: ConfigDuration?
    }

    @Test("an alias resolves to the anchored node")
    func alias() throws {
        struct Config: Decodable { var a: Retry; var b: Retry; var names: [String] }
        let config = try decode(
            Config.self,
            """
            a: &retry { initialBackoff: 2s, maxAge: 1h }
            b: *retry
            names: [&n chat, *n]
            """
        )
        #expect(config.b == config.a)
        #expect(config.b.maxAge == ConfigDuration(.seconds(3600)))
        #expect(config.names == ["chat", "chat"])
    }

    @Test("an error in an aliased value points at the anchored text")
    func aliasErrorMark() throws {
        struct Config: Decodable { var a: String; var port: Int }
        let error = try #require(failure(Config.self, "a: &p eighty\nport: *p\n"))
        #expect(error.mark == mark(1, 4))  // libyaml starts an anchored node at its &anchor
        #expect(error.message == "expected an integer, found 'eighty' in port")
    }

    @Test("<< merges a mapping; explicit keys win wherever they are written")
    func mergeOne() throws {
        struct Sink: Decodable { var type: String; var timeout: ConfigDuration; var url: String }
        struct Config: Decodable { var defaults: Sink?; var sinks: [String: Sink] }
        let (config, unknown) = try decodeChecked(
            Config.self,
            """
            sinks:
              base: &base { type: webhook, timeout: 10s, url: http://a }
              chat:
                url: http://chat
                <<: *base
                timeout: 30s
            """
        )
        let chat = try #require(config.sinks["chat"])
        #expect(chat.type == "webhook")
        #expect(chat.url == "http://chat")
        #expect(chat.timeout == ConfigDuration(.seconds(30)))
        #expect(unknown.isEmpty)
    }

    @Test("<< with a list merges in order: earlier mappings win over later ones")
    func mergeList() throws {
        let document = try parse(
            """
            one: &one { a: 1, b: 1 }
            two: &two { b: 2, c: 2 }
            merged:
              <<: [*one, *two]
              c: 3
            """
        )
        let merged = try #require(document.root["merged"])
        #expect(merged.keys == ["a", "b", "c"])
        #expect(merged["a"]?.scalarText == "1")
        #expect(merged["b"]?.scalarText == "1")
        #expect(merged["c"]?.scalarText == "3")
        // Merged keys keep the marks of where they are written.
        if case .mapping(let entries, _) = merged {
            #expect(entries[0].keyMark == mark(1, 13))
        }
    }

    @Test("a merged key nobody asked for is reported at its anchor")
    func mergedUnknownKey() throws {
        struct Sink: Decodable { var type: String }
        struct Config: Decodable { var sinks: [String: Sink] }
        let (_, unknown) = try decodeChecked(
            Config.self,
            """
            sinks:
              chat:
                <<: &common { type: webhook, tmeout: 5s }
            """
        )
        #expect(unknown.map(\.description) == ["bridge.yaml:3:34: unknown key 'tmeout' in sinks.chat"])
    }

    @Test("<< of a scalar is an error at the value")
    func mergeScalar() throws {
        let error = try #require(parseFailure("a:\n  <<: nope\n"))
        #expect(error.mark == mark(2, 7))
        #expect(error.message == "the merge key '<<' takes a mapping or a list of mappings, found 'nope'")
    }

    @Test("a quoted '<<' is an ordinary key")
    func quotedMergeKey() throws {
        let document = try parse("a:\n  '<<': x\n")
        #expect(document.root["a"]?.keys == ["<<"])
    }
}
