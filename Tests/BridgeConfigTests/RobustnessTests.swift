import SinkAPI
import TestSupport
import Testing

@testable import BridgeConfig

@Suite("Robustness")
struct RobustnessTests {
    struct Sink: Decodable {
        var type: String
        var timeout: ConfigDuration?
        var to: [String]?
        var size: ConfigByteSize?
        var path: ConfigPath?
        var flag: Bool?
        var port: Int?
    }

    struct Config: Decodable {
        var graph: GraphSection
        var sinks: [String: Sink]?
        var routes: [[String: [String]]]?
    }

    static let sample = """
        graph: &g
          tenant: ${TENANT:-contoso}
          clientId: "abc"
        sinks:
          chat: { type: webhook, timeout: 10s, to: [a, b], size: 1MiB, path: ./x, flag: true, port: 8080 }
          other:
            <<: *g
            type: file
        routes:
          - match: [inbox]
        """

    /// Mutates the sample deterministically (bytes replaced, dropped, duplicated) and checks that
    /// parsing and decoding either succeed or throw a `ConfigError`, never anything else.
    @Test("mutated input only ever yields values or ConfigErrors")
    func mutations() throws {
        var generator = SplitMix64(seed: 0x5EED)
        let base = Array(Self.sample.utf8)
        let alphabet = Array("{}[]:,-&*!|>'\"#%@`\t\n ~<$\\".utf8) + [0x00, 0xC3, 0xFF, 0x80]
        var outcomes = (decoded: 0, configErrors: 0)
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: position)
                default: bytes.insert(contentsOf: bytes[position..<min(bytes.count, position + 8)], at: position)
                }
            }
            do {
                let document = try ConfigDocument.parse(bytes: bytes, file: "fuzz.yaml", directory: "/")
                let decoder = ConfigDecoder(document: document, environment: [:])
                _ = try decoder.decode(Config.self)
                _ = decoder.unknownKeyErrors()
                outcomes.decoded += 1
            } catch is ConfigError {
                outcomes.configErrors += 1
            } catch {
                Issue.record(
                    "not a ConfigError: \(error) for \(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
        #expect(outcomes.decoded > 0)
        #expect(outcomes.configErrors > 0)
    }

    struct Timeout: Decodable {
        var timeout: ConfigDuration
    }

    /// Regression (fuzz-config, Fuzz/corpus/config/regression-duration-overflow.yaml): a whole
    /// part that just fits in Int64 nanoseconds plus a fraction went past it, and the addition trapped.
    @Test(
        "a duration whose fraction tips it past Int64 nanoseconds is a ConfigError, not a trap",
        arguments: ["2562047.8h", "9223372036.9s", "9223372036854.9ms", "153722867.5m", "1d2562047.8h"])
    func durationFractionOverflow(_ text: String) throws {
        #expect(ConfigDuration.parse(text) == nil)
        let document = try ConfigDocument.parse("timeout: \(text)\n", file: "bridge.yaml", directory: "/")
        let error = #expect(throws: ConfigError.self) {
            try ConfigDecoder(document: document, environment: [:]).decode(Timeout.self)
        }
        #expect(error?.mark == ConfigMark(line: 1, column: 10))
    }

    @Test("durations just below the Int64 limit still parse, fraction included")
    func durationNearLimit() {
        #expect(ConfigDuration.parse("2562047.7h") == .nanoseconds(9_223_371_720_000_000_000))
        #expect(ConfigDuration.parse("9223372036.854s") == .nanoseconds(9_223_372_036_854_000_000))
        #expect(ConfigDuration.parse("106751d") == .nanoseconds(9_223_286_400_000_000_000))
        #expect(ConfigDuration.parse("106752d") == nil)
    }
}

