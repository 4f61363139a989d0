import BridgeCore
import BridgeStore
import Foundation
import TestSupport
import Testing

/// Whatever arrives at `/notifications` goes through `NotificationIntake.receive` with a real
/// SQLite journal and is answered 202 (journaled, or dropped and counted) or 400 (not a
/// notification collection): never a crash, never a hang, never memory out of proportion.
/// The libFuzzer harnesses in `Fuzz/` go further; anything they find lands here as a case.
@Suite("Hostile notification bodies")
struct HostileInputTests {
    typealias Fixture = IntakeTests.Fixture

    static func body(_ items: [String]) -> [UInt8] { IntakeTests.body(items) }

    /// A valid, authenticated item whose `resourceData` is `resourceData` (JSON text as given).
    static func item(resourceData: String, etag: String = "W/\"1\"", resource: String = "Users/1/Messages/1") -> String {
        ##"{"subscriptionId":"\##(IntakeTests.subscriptionID)","clientState":"secretClientValue","changeType":"created","resource":"\##(resource)","resourceData":{"@odata.etag":\##(JSONValue.string(etag).serializedString),"value":\##(resourceData)}}"##
    }

    /// Expects a 400 that journals nothing.
    static func expectRejected(_ body: [UInt8], _ fixture: Fixture, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let outcome = await fixture.intake.receive(body: body, endpoint: .notifications)
        #expect(outcome.status == 400, "\(String(decoding: body.prefix(120), as: UTF8.self).debugDescription)", sourceLocation: sourceLocation)
        #expect(outcome.reason != nil, sourceLocation: sourceLocation)
        #expect(try await fixture.store.eventCount() == 0, sourceLocation: sourceLocation)
    }

    /// The one event journaled from an accepted body.
    static func journaledEvent(_ fixture: Fixture) async throws -> BridgeEvent {
        let pending = try await fixture.store.unroutedEvents(limit: 10)
        #expect(pending.count == 1)
        return try #require(pending.first?.event)
    }

    // MARK: Nesting and size

    @Test("100 000 levels of nesting are a 400, not a stack overflow")
    func deepNesting() async throws {
        let fixture = try Fixture()
        let depth = 100_000
        let arrays = [UInt8](repeating: UInt8(ascii: "["), count: depth) + [UInt8](repeating: UInt8(ascii: "]"), count: depth)
        try await Self.expectRejected(arrays, fixture)
        let objects =
            Array(String(repeating: #"{"a":"#, count: depth).utf8) + [UInt8(ascii: "1")] + [UInt8](repeating: UInt8(ascii: "}"), count: depth)
        try await Self.expectRejected(objects, fixture)
        let unclosed = [UInt8](repeating: UInt8(ascii: "["), count: depth)
        try await Self.expectRejected(unclosed, fixture)
        // Inside an otherwise valid item: the whole body is refused, not just the item.
        let deepValue = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        try await Self.expectRejected(Self.body([Self.item(resourceData: deepValue)]), fixture)
    }

    @Test("nesting is accepted up to the parser's 64 levels and refused one level beyond")
    func nestingLimit() async throws {
        // The body, `value`, the item and `resourceData` are 4 levels; the arrays in resourceData's `value` are the rest.
        let fits = JSONParser.defaultMaxDepth - 4
        let fixture = try Fixture()
        let accepted = await fixture.intake.receive(
            body: Self.body([Self.item(resourceData: String(repeating: "[", count: fits) + String(repeating: "]", count: fits))]),
            endpoint: .notifications)
        #expect(accepted.status == 202)
        #expect(accepted.accepted == 1)
        let tooDeep = fits + 1
        let refused = await fixture.intake.receive(
            body: Self.body([Self.item(resourceData: String(repeating: "[", count: tooDeep) + String(repeating: "]", count: tooDeep), etag: "2")]),
            endpoint: .notifications)
        #expect(refused.status == 400)
        #expect(try await fixture.store.eventCount() == 1)
    }

    @Test("a 900 KB string is journaled intact")
    func hugeString() async throws {
        let fixture = try Fixture()
        // ASCII, two-byte UTF-8, and escapes every so often (the parser's slow path).
        var text = ""
        text.reserveCapacity(900_000)
        for i in 0..<32_000 { text += i % 100 == 0 ? "line\n\"é\"\t\\ " : "abcdefghijklmnopqrstuvwxyzé " }
        let literal = JSONValue.string(text).serializedString
        #expect(literal.utf8.count > 900_000)
        let outcome = await fixture.intake.receive(body: Self.body([Self.item(resourceData: literal)]), endpoint: .notifications)
        #expect(outcome.status == 202)
        #expect(outcome.accepted == 1)
        let event = try await Self.journaledEvent(fixture)
        #expect(event.resourceData?["value"]?.stringValue.map { Array($0.utf8) } == Array(text.utf8))
    }

    @Test("10 000 items in one batch are all journaled, with memory growth in proportion")
    func largeBatch() async throws {
        let fixture = try Fixture()
        let count = 10_000
        let body = Self.body((0..<count).map { IntakeTests.item(etag: "W/\"\($0)\"", resource: "Users/1/Messages/\($0)") })
        #expect(body.count > 2_500_000)  // well over the default server.maxBodyBytes (1 MiB): the intake copes with whatever an operator allows
        let before = try #require(Self.residentKilobytes())
        let outcome = await fixture.intake.receive(body: body, endpoint: .notifications)
        let after = try #require(Self.residentKilobytes())
        #expect(outcome.status == 202)
        #expect(outcome.accepted == count)
        #expect(outcome.dropped == 0)
        #expect(try await fixture.store.eventCount() == count)
        // The body is ~2.6 MB; its parsed tree, the events and their encodings are a few times that,
        // and SQLite's page cache is bounded: about 16 MB measured here (debug build). 200 MB is
        // generous on purpose: RSS is process-wide and other suites run in parallel, so this catches
        // growth out of proportion (a copy of the body per item, a leak per item), not a few megabytes.
        let grownMegabytes = Double(after - before) / 1024
        #expect(grownMegabytes < 200, "resident memory grew by \(grownMegabytes) MB for one batch of \(count) items")
    }

    @Test("100 000 junk items are dropped and counted without journaling anything")
    func junkBatch() async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(body: Self.body(Array(repeating: "{}", count: 100_000)), endpoint: .notifications)
        #expect(outcome.status == 202)
        #expect(outcome.invalid == 100_000)
        #expect(outcome.accepted == 0)
        #expect(try await fixture.store.eventCount() == 0)
    }

    // MARK: Encoding

    @Test(
        "invalid UTF-8 in a string or a member name is a 400",
        arguments: [
            [0xFF], [0xFE], [0xC0, 0xAF],  // never valid; an overlong "/"
            [0xC3], [0xE2, 0x82],  // truncated sequences
            [0xED, 0xA0, 0x80],  // a surrogate encoded as UTF-8
            [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],  // beyond U+10FFFF
            [0x80], [0x41, 0xBF, 0x41],  // stray continuation bytes
        ] as [[UInt8]])
    func invalidUTF8(_ bad: [UInt8]) async throws {
        let fixture = try Fixture()
        func with(_ prefix: String, _ suffix: String) -> [UInt8] { Array(prefix.utf8) + bad + Array(suffix.utf8) }
        let id = IntakeTests.subscriptionID
        // In a value, in resourceData, in a member name, in the envelope's own member name, outside any string.
        try await Self.expectRejected(
            with(#"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":"created","resource":"r"#, #""}]}"#), fixture)
        try await Self.expectRejected(
            with(#"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":"created","resourceData":{"id":""#, #""}}]}"#),
            fixture)
        try await Self.expectRejected(
            with(#"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":"created","resourceData":{""#, #"":1}}]}"#),
            fixture)
        try await Self.expectRejected(with(#"{"val"#, #"ue":[]}"#), fixture)
        try await Self.expectRejected(with(#"{"value":["#, #"]}"#), fixture)
    }

    @Test(
        "a lone or reversed surrogate escape is a 400",
        arguments: [
            #"\ud800"#, #"\udfff"#, #"\ud800x"#, #"\ud800\u0041"#, #"\ud800\ud800"#, #"\ude00\ud83d"#, #"\ud83d\"#, #"\ud83d\u"#,
        ])
    func loneSurrogate(_ escape: String) async throws {
        let fixture = try Fixture()
        try await Self.expectRejected(Self.body([Self.item(resourceData: "\"a\(escape)b\"")]), fixture)
        try await Self.expectRejected(
            Self.body([
                #"{"subscriptionId":"\#(IntakeTests.subscriptionID)","clientState":"secretClientValue","changeType":"created","resourceData":{"\#(escape)":1}}"#
            ]), fixture)
    }

    @Test("a surrogate pair and every other escape are decoded and journaled")
    func validEscapes() async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(
            body: Self.body([Self.item(resourceData: #""\ud83d\ude00 \u00e9\u0000\u001f\"\\\/\b\f\n\r\t""#)]), endpoint: .notifications)
        #expect(outcome.status == 202)
        let event = try await Self.journaledEvent(fixture)
        #expect(event.resourceData?["value"]?.stringValue == "😀 é\u{0}\u{1F}\"\\/\u{8}\u{C}\n\r\t")
    }

    @Test("raw UTF-8 of every length (é, €, 😀) beside ASCII is decoded and journaled as sent")
    func rawUTF8() async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(body: Self.body([Self.item(resourceData: "\"plain é € 😀 end\"")]), endpoint: .notifications)
        #expect(outcome.status == 202)
        let event = try await Self.journaledEvent(fixture)
        #expect(event.resourceData?["value"]?.stringValue == "plain é € 😀 end")
        #expect(event.resourceData?["value"]?.stringValue?.utf8.count == 21)
    }

    @Test(
        "NUL bytes, a byte-order mark and trailing garbage are a 400",
        arguments: [
            [UInt8](#"{"value":[{"subscriptionId":"a"#.utf8) + [0x00] + Array(#"b","changeType":"created"}]}"#.utf8),  // raw NUL in a string
            [UInt8](#"{"value":"#.utf8) + [0x00] + Array("[]}".utf8),  // NUL between tokens
            [UInt8](#"{"value":[]}"#.utf8) + [0x00],  // NUL after the document
            [0x00] + [UInt8](#"{"value":[]}"#.utf8),
            [0xEF, 0xBB, 0xBF] + [UInt8](#"{"value":[]}"#.utf8),  // UTF-8 BOM: RFC 8259 lets a parser refuse it, this one does
            [0xFF, 0xFE] + [UInt8](#"{"value":[]}"#.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }),  // UTF-16LE
            [UInt8](#"{"value":[]}x"#.utf8), [UInt8](#"{"value":[]}{}"#.utf8), [UInt8](#"{"value":[]},"#.utf8),
            [UInt8](#"{"value":[]}]"#.utf8), [UInt8](#"{"value":[]} // comment"#.utf8),
            [], [UInt8](" \n\t".utf8), [UInt8]("null".utf8), [UInt8]("\"value\"".utf8),
        ] as [[UInt8]])
    func framing(_ body: [UInt8]) async throws {
        try await Self.expectRejected(body, try Fixture())
    }

    @Test("whitespace around the document is allowed")
    func surroundingWhitespace() async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(
            body: Array(" \r\n\t".utf8) + Self.body([IntakeTests.item()]) + Array("\n \t\r".utf8), endpoint: .notifications)
        #expect(outcome.status == 202)
        #expect(outcome.accepted == 1)
    }

    // MARK: Numbers

    @Test("numbers are kept as their text: huge exponents, negative zero, integers past 64 bits")
    func numbersAsText() async throws {
        let fixture = try Fixture()
        let numbers = ["1e999999", "-0", "123456789012345678901234567890", "-0.0e-0", "1E+400", "-1e-999999", "0.1000000000000000055511151231257827"]
        let outcome = await fixture.intake.receive(
            body: Self.body([Self.item(resourceData: "[\(numbers.joined(separator: ","))]")]), endpoint: .notifications)
        #expect(outcome.status == 202)
        let event = try await Self.journaledEvent(fixture)
        #expect(event.resourceData?["value"] == .array(numbers.map(JSONValue.number)))
        #expect(String(decoding: event.encoded(), as: UTF8.self).contains("[\(numbers.joined(separator: ","))]"))
    }

    @Test(
        "malformed numbers are a 400",
        arguments: ["01", "+1", ".5", "1.", "1e", "1e+", "-", "--1", "0x10", "NaN", "Infinity", "-Infinity", "1_000", "１"])
    func malformedNumber(_ number: String) async throws {
        try await Self.expectRejected(Self.body([Self.item(resourceData: number)]), try Fixture())
    }

    // MARK: Wrong types

    /// What the intake makes of a body with a member of the wrong type.
    enum Expected: Sendable {
        /// 400: the envelope is not a notification collection.
        case rejected
        /// 202 with the item dropped as invalid.
        case invalid
        /// 202 with the item dropped for its clientState.
        case wrongClientState
        /// 202, journaled, with this event member absent (the ill-typed field is ignored).
        case acceptedWithout(String)
        /// 202, journaled, with no attachment (an ill-typed encryptedContent is ignored).
        case acceptedWithoutAttachment
        /// 202, journaled (the ill-typed member is not one the intake reads for this item).
        case accepted
    }

    struct WrongType: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var expected: Expected
        var testDescription: String { name }
    }

    static let id = IntakeTests.subscriptionID
    static let good = #""subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":"created","resource":"r/1""#

    static let wrongTypes: [WrongType] = [
        // The envelope
        WrongType(name: "body is an array", body: "[]", expected: .rejected),
        WrongType(name: "body is a string", body: #""value""#, expected: .rejected),
        WrongType(name: "body is a number", body: "7", expected: .rejected),
        WrongType(name: "value is a string", body: #"{"value":"[]"}"#, expected: .rejected),
        WrongType(name: "value is a number", body: #"{"value":1}"#, expected: .rejected),
        WrongType(name: "value is an object", body: #"{"value":{"0":{\#(good)}}}"#, expected: .rejected),
        WrongType(name: "value is null", body: #"{"value":null}"#, expected: .rejected),
        WrongType(name: "value is true", body: #"{"value":true}"#, expected: .rejected),
        WrongType(name: "an item is a string", body: #"{"value":[{\#(good)},"item"]}"#, expected: .rejected),
        WrongType(name: "an item is null", body: #"{"value":[null]}"#, expected: .rejected),
        WrongType(name: "an item is an array", body: #"{"value":[[{\#(good)}]]}"#, expected: .rejected),
        // Fields an item cannot do without
        WrongType(name: "subscriptionId is a number", body: #"{"value":[{"subscriptionId":7,"changeType":"created"}]}"#, expected: .invalid),
        WrongType(
            name: "subscriptionId is an object", body: #"{"value":[{"subscriptionId":{"id":"\#(id)"},"changeType":"created"}]}"#, expected: .invalid),
        WrongType(name: "subscriptionId is an array", body: #"{"value":[{"subscriptionId":["\#(id)"],"changeType":"created"}]}"#, expected: .invalid),
        WrongType(name: "subscriptionId is null", body: #"{"value":[{"subscriptionId":null,"changeType":"created"}]}"#, expected: .invalid),
        WrongType(name: "subscriptionId is empty", body: #"{"value":[{"subscriptionId":"","changeType":"created"}]}"#, expected: .invalid),
        WrongType(
            name: "changeType is a number", body: #"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":1}]}"#,
            expected: .invalid),
        WrongType(
            name: "changeType is an array",
            body: #"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":["created"]}]}"#, expected: .invalid),
        WrongType(
            name: "lifecycleEvent is an object",
            body: #"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","lifecycleEvent":{}}]}"#, expected: .invalid),
        WrongType(name: "both changeType and lifecycleEvent", body: #"{"value":[{\#(good),"lifecycleEvent":"missed"}]}"#, expected: .invalid),
        // clientState is the credential: anything but the right string is a wrong one
        WrongType(
            name: "clientState is an object",
            body: #"{"value":[{"subscriptionId":"\#(id)","clientState":{"value":"secretClientValue"},"changeType":"created"}]}"#,
            expected: .wrongClientState),
        WrongType(
            name: "clientState is a number", body: #"{"value":[{"subscriptionId":"\#(id)","clientState":1,"changeType":"created"}]}"#,
            expected: .wrongClientState),
        WrongType(
            name: "clientState is null", body: #"{"value":[{"subscriptionId":"\#(id)","clientState":null,"changeType":"created"}]}"#,
            expected: .wrongClientState),
        // Optional fields of the wrong type are left out of the event
        WrongType(
            name: "resourceData is an array", body: #"{"value":[{\#(good),"resourceData":[{"id":"1"}]}]}"#, expected: .acceptedWithout("resourceData")
        ),
        WrongType(name: "resourceData is a string", body: #"{"value":[{\#(good),"resourceData":"{}"}]}"#, expected: .acceptedWithout("resourceData")),
        WrongType(name: "resourceData is a number", body: #"{"value":[{\#(good),"resourceData":1}]}"#, expected: .acceptedWithout("resourceData")),
        WrongType(
            name: "resource is an object",
            body: #"{"value":[{"subscriptionId":"\#(id)","clientState":"secretClientValue","changeType":"created","resource":{"a":1}}]}"#,
            expected: .acceptedWithout("resource")),
        WrongType(name: "tenantId is a number", body: #"{"value":[{\#(good),"tenantId":42}]}"#, expected: .acceptedWithout("tenantId")),
        WrongType(
            name: "validationTokens is an object", body: #"{"value":[{\#(good),"tenantId":"t"}],"validationTokens":{"a":"b"}}"#,
            expected: .accepted),
        WrongType(
            name: "encryptedContent is a string", body: #"{"value":[{\#(good),"encryptedContent":"x"}]}"#, expected: .acceptedWithoutAttachment),
        WrongType(
            name: "encryptedContent is an array", body: #"{"value":[{\#(good),"encryptedContent":[{"data":"x"}]}],"validationTokens":[1,{}]}"#,
            expected: .acceptedWithoutAttachment),
    ]

    @Test("wrong types are a 400 or a dropped item, never a crash", arguments: wrongTypes)
    func wrongType(_ testCase: WrongType) async throws {
        let fixture = try Fixture()
        let outcome = await fixture.intake.receive(body: Array(testCase.body.utf8), endpoint: .notifications)
        switch testCase.expected {
        case .rejected:
            #expect(outcome.status == 400)
        case .invalid:
            #expect(outcome.status == 202)
            #expect(outcome.invalid == 1)
            #expect(outcome.accepted == 0)
        case .wrongClientState:
            #expect(outcome.status == 202)
            #expect(outcome.wrongClientState == 1)
            #expect(outcome.accepted == 0)
        case .acceptedWithout(let member):
            #expect(outcome.status == 202)
            #expect(outcome.accepted == 1)
            let event = try await Self.journaledEvent(fixture)
            #expect(event.json.objectValue?.keys.contains(member) == false)
            #expect(event.json.objectValue?.keys.contains("changeType") == true)
        case .acceptedWithoutAttachment:
            #expect(outcome.status == 202)
            #expect(outcome.accepted == 1)
            let pending = try await fixture.store.unroutedEvents(limit: 10)
            #expect(pending.count == 1)
            #expect(pending.first?.attachment == nil)
        case .accepted:
            #expect(outcome.status == 202)
            #expect(outcome.accepted == 1)
            #expect(try await fixture.store.eventCount() == 1)
        }
        switch testCase.expected {
        case .rejected, .invalid, .wrongClientState: #expect(try await fixture.store.eventCount() == 0)
        case .acceptedWithout, .acceptedWithoutAttachment, .accepted: break
        }
    }

    // MARK: Mutations

    /// Bodies to mutate: the shared Graph samples when `../shared` is there, and always one built here.
    static func mutationSeeds() throws -> [[UInt8]] {
        var seeds = [Self.body([IntakeTests.item(), #"{"subscriptionId":"\#(id)","clientState":"secretClientValue","lifecycleEvent":"missed"}"#])]
        if sharedFixturesPresent {
            let samples = try JSONParser.parse(try sharedFile("graph-vectors/notification-samples.json"))
            for name in ["basic_message_created", "lifecycle_batch"] {
                seeds.append(try #require(samples[name]).serialized())
            }
        }
        return seeds
    }

    /// 3000 seeded mutations (bit flips, truncations, inserted structural bytes, duplicated runs):
    /// every one is answered 202 or 400, the same on every run.
    @Test("seeded mutations of Graph bodies are only ever answered 202 or 400")
    func mutations() async throws {
        let fixture = try Fixture()
        let seeds = try Self.mutationSeeds()
        var generator = SplitMix64(seed: 0x0B0D_1E5)
        let inserts: [UInt8] = Array("[{\"\\".utf8) + [0xFF, 0x00, UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ",")]
        var statuses: [Int: Int] = [:]
        for _ in 0..<3000 {
            var bytes = seeds.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 1...3, using: &generator) where !bytes.isEmpty {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
                case 1: bytes.removeSubrange(position...)
                case 2: bytes.insert(inserts.randomElement(using: &generator)!, at: position)
                default:
                    let run = bytes[position..<min(bytes.count, position + Int.random(in: 1...64, using: &generator))]
                    bytes.insert(contentsOf: run, at: position)
                }
            }
            let outcome = await fixture.intake.receive(body: bytes, endpoint: .notifications)
            statuses[outcome.status, default: 0] += 1
            if outcome.status != 202 && outcome.status != 400 {
                Issue.record("answered \(outcome.status) (\(outcome.reason ?? "")) for \(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
        #expect(statuses.keys.sorted() == [202, 400])
        // Enough mutants stay valid to reach the journal, so the store side is exercised too.
        #expect(try await fixture.store.eventCount() > 10)
    }

    // MARK: Helpers

    /// This process's resident set size from /proc/self/status, in kB (Linux only; nil elsewhere).
    static func residentKilobytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst("VmRSS:".count).filter(\.isNumber))
        }
        return nil
    }
}

