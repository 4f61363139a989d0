import Testing

@testable import BridgeConfig

@Suite("Durations, sizes and paths")
struct ValueTypeTests {
    struct Timing: Decodable { var timeout: ConfigDuration }
    struct Limits: Decodable { var maxBodyBytes: ConfigByteSize }
    struct Files: Decodable { var path: ConfigPath; var others: [ConfigPath]? }

    @Test(
        "durations with units and compounds",
        arguments: [
            ("30s", Duration.seconds(30)), ("5m", .seconds(300)), ("2h", .seconds(7200)), ("1d", .seconds(86400)),
            ("500ms", .milliseconds(500)), ("1h30m", .seconds(5400)), ("1.5h", .seconds(5400)), ("0s", .zero),
        ]
    )
    func durations(text: String, expected: Duration) throws {
        #expect(try decode(Timing.self, "timeout: \(text)\n").timeout.duration == expected)
    }

    @Test("seconds and description")
    func durationHelpers() {
        #expect(ConfigDuration(.milliseconds(1500)).seconds == 1.5)
        #expect(ConfigDuration(.seconds(5400)).description == "1h30m")
        #expect(ConfigDuration(.milliseconds(500)).description == "500ms")
        #expect(ConfigDuration(.seconds(-90)).description == "-1m30s")
        #expect(ConfigDuration(.seconds(Int64.max)).description == "\(Int64.max)s")
        #expect(ConfigByteSize(bytes: 1536 * 1024).description == "1536KiB")
    }

    @Test("a plain number or a bad unit is not a duration; the error says which units exist")
    func badDurations() throws {
        for text in ["30", "5x", "1h 30m", "-5s", "s", "1.s", "99999999999999d"] {
            let error = try #require(failure(Timing.self, "timeout: \(text)\n"), "\(text)")
            #expect(error.mark == mark(1, 10), "\(text)")
            #expect(error.message.hasPrefix("expected a duration like 30s"), "\(text)")
            #expect(error.message.contains("units: ms, s, m, h, d"), "\(text)")
            #expect(error.message.hasSuffix("in timeout"), "\(text)")
        }
    }

    @Test("a duration given a mapping says so")
    func durationShape() throws {
        let error = try #require(failure(Timing.self, "timeout:\n  s: 1\n"))
        #expect(error.mark == mark(2, 3))
        #expect(error.message.hasSuffix("found a mapping in timeout"))
    }

    @Test(
        "sizes with binary and decimal units, any case",
        arguments: [
            ("512", 512), ("64KiB", 65536), ("1MiB", 1_048_576), ("2GiB", 2_147_483_648), ("1KB", 1000),
            ("1MB", 1_000_000), ("1mib", 1_048_576), ("10 kb", 10_000), ("1.5KiB", 1536), ("100B", 100),
        ]
    )
    func sizes(text: String, expected: Int) throws {
        #expect(try decode(Limits.self, "maxBodyBytes: \(text)\n").maxBodyBytes.bytes == expected)
    }

    @Test("bad sizes are errors at the value")
    func badSizes() throws {
        for text in ["1XB", "-1", "MiB", "1.2.3KB", "99999999999999999999"] {
            let error = try #require(failure(Limits.self, "maxBodyBytes: \(text)\n"), "\(text)")
            #expect(error.mark == mark(1, 15), "\(text)")
            #expect(error.message.hasPrefix("expected a size like 512, 64KiB"), "\(text)")
        }
    }

    @Test("relative paths resolve against the config file's folder, absolute ones stay")
    func paths() throws {
        let document = try ConfigDocument.parse(
            "path: state/bridge.sqlite\nothers: [/var/log/audit.jsonl, ../certs/./app.pem, ~/x]\n",
            file: "conf/bridge.yaml", directory: "/etc/bridge"
        )
        let files = try ConfigDecoder(document: document, environment: ["HOME": "/home/op"]).decode(Files.self)
        #expect(files.path.path == "/etc/bridge/state/bridge.sqlite")
        #expect(files.others?.map(\.path) == ["/var/log/audit.jsonl", "/etc/certs/app.pem", "/home/op/x"])
    }

    @Test("a relative directory given to parse is made absolute")
    func relativeDirectory() throws {
        let document = try ConfigDocument.parse("a: 1\n", file: "bridge.yaml", directory: "conf")
        #expect(document.directory.hasPrefix("/"))
        #expect(document.directory.hasSuffix("/conf"))
    }

    @Test("an empty path is an error")
    func emptyPath() throws {
        let error = try #require(failure(Files.self, "path: ''\n"))
        #expect(error.mark == mark(1, 7))
        #expect(error.message == "expected a path, found an empty string in path")
    }
}
