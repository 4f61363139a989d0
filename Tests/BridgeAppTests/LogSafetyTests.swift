import BridgeApp
import BridgeCore
import BridgeStore
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

/// The lines a `BridgeLogHandler` wrote, as written (each ends in one newline).
final class LineCollector: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func logger(_ format: BridgeLogHandler.Format) -> Logger {
        let output = LogOutput { line in self.lines.withLock { $0.append(line) } }
        return Logger(label: "test") { label in BridgeLogHandler(label: label, format: format, level: .info, output: output) }
    }
}

/// A clock that only moves when the test says so.
final class ManualClock: Sendable {
    private let current = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { current.withLock { $0 } }
    func advance(by duration: Duration) { current.withLock { $0 += duration } }
}

@Suite("logs cannot be flooded or forged from outside")
struct LogSafetyTests {
    static let knownID = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    static let secret = "secretClientValue"
    /// A subscription id that tries to end the line, forge a new one and colour the terminal.
    static let hostileID = "evil\n2026-12-06T00:00:00.000Z error forged line\r\u{1B}[31mred\u{1B}[0m\u{7F}\u{85}\u{9B}2J\u{2028}end"

    struct Fixture {
        let directory: TemporaryDirectory
        let intake: NotificationIntake
        let lines: LineCollector
        let clock: ManualClock

        init(format: BridgeLogHandler.Format = .text) throws {
            let directory = TemporaryDirectory()
            let lines = LineCollector()
            let clock = ManualClock()
            self.directory = directory
            self.lines = lines
            self.clock = clock
            let store = try SQLiteStateStore(path: directory.path + "/state.sqlite", logger: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() })
            let subscriptions = SubscriptionDirectory([
                SubscriptionEntry(
                    name: "audit-feed", id: LogSafetyTests.knownID, resource: "users/alice/messages", clientState: LogSafetyTests.secret)
            ])
            intake = NotificationIntake(
                directory: subscriptions, store: store, doorbell: Doorbell(), logger: lines.logger(format),
                logLimiter: LogRateLimiter(now: { clock.now }))
        }
    }

    static func item(id: String = knownID, clientState: String = secret, etag: String = "1") -> String {
        #"{"subscriptionId":\#(JSONValue.string(id).serializedString),"clientState":\#(JSONValue.string(clientState).serializedString),"changeType":"created","resource":"Users/1/Messages/\#(etag)","resourceData":{"@odata.etag":"\#(etag)","id":"1"}}"#
    }

    static func body(_ items: [String]) -> [UInt8] { Array(#"{"value":[\#(items.joined(separator: ","))]}"#.utf8) }

    /// The one line's JSON object (fails when it is not one line of valid JSON).
    static func object(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { !$0.isNewline })
        return try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("text: a hostile subscription id gives exactly one line, its control characters escaped and visible")
    func hostileText() async throws {
        let fixture = try Fixture(format: .text)
        let outcome = await fixture.intake.receive(body: Self.body([Self.item(id: Self.hostileID)]), endpoint: .notifications)
        #expect(outcome.status == 202 && outcome.unknownSubscription == 1)
        let lines = fixture.lines.all
        try #require(lines.count == 1, "\(lines)")
        let line = lines[0]
        #expect(line.filter(\.isNewline).count == 1 && line.hasSuffix("\n"))
        #expect(!line.unicodeScalars.dropLast().contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" })
        let escaped = #""evil\n2026-12-06T00:00:00.000Z error forged line\r\u001b[31mred\u001b[0m\u007f\u0085\u009b2J\u2028end""#
        #expect(line.contains("bridge.subscription_id=" + escaped), "\(line)")
        #expect(line.contains("bridge.dropped.unknown_subscription=1"))
    }

    @Test("json: a hostile subscription id and clientState give one valid single-line JSON object each, the values intact after decoding")
    func hostileJSON() async throws {
        let fixture = try Fixture(format: .json)
        _ = await fixture.intake.receive(body: Self.body([Self.item(id: Self.hostileID)]), endpoint: .notifications)
        let hostileState = "x\n{\"level\":\"error\",\"message\":\"forged\"}\u{1B}[2K"
        _ = await fixture.intake.receive(body: Self.body([Self.item(clientState: hostileState)]), endpoint: .notifications)
        let lines = fixture.lines.all
        try #require(lines.count == 2, "\(lines)")
        let unknown = try Self.object(lines[0])
        #expect(unknown["bridge.subscription_id"] as? String == Self.hostileID)
        #expect(unknown["bridge.dropped.unknown_subscription"] as? String == "1")
        #expect(lines[0].contains(#"\u001b[31m"#) && lines[0].contains(#"\u0085"#) && lines[0].contains(#"\u007f"#))
        let wrong = try Self.object(lines[1])
        #expect(wrong["bridge.dropped.wrong_client_state"] as? String == "1")
        #expect(wrong["bridge.subscription"] as? String == "audit-feed")
        // A clientState is never logged, right or wrong.
        #expect(!lines[1].contains("[2K") && !lines[1].contains(#"\"level\""#) && !lines.joined().contains(Self.secret))
    }

    @Test("1,000 bad items in one request give one line with the counts by reason")
    func oneLinePerRequest() async throws {
        let fixture = try Fixture(format: .json)
        let unknown = (0..<600).map { Self.item(id: "stranger-\($0)", etag: "u\($0)") }
        let wrong = (0..<400).map { Self.item(clientState: "guess-\($0)", etag: "w\($0)") }
        let outcome = await fixture.intake.receive(body: Self.body(unknown + wrong), endpoint: .notifications)
        #expect(outcome.dropped == 1000)
        let lines = fixture.lines.all
        try #require(lines.count == 1, "\(lines.count) lines")
        let line = try Self.object(lines[0])
        #expect(line["bridge.dropped"] as? String == "1000")
        #expect(line["bridge.dropped.unknown_subscription"] as? String == "600")
        #expect(line["bridge.dropped.wrong_client_state"] as? String == "400")
        #expect(line["bridge.subscription_id"] as? String == "stranger-0")
    }

    @Test("many requests within a second give one line; the next one, a second later, counts the suppressed lines")
    func rateLimited() async throws {
        let fixture = try Fixture(format: .json)
        for index in 0..<50 {
            _ = await fixture.intake.receive(body: Self.body([Self.item(id: "stranger-\(index)")]), endpoint: .notifications)
            fixture.clock.advance(by: .milliseconds(10))
        }
        #expect(fixture.lines.all.count == 1)
        // Another kind of line (a wrong clientState) has its own allowance within the same second.
        _ = await fixture.intake.receive(body: Self.body([Self.item(clientState: "guess")]), endpoint: .notifications)
        #expect(fixture.lines.all.count == 2)
        // As is a malformed body, once.
        _ = await fixture.intake.receive(body: Array("{\"value\": 7}".utf8), endpoint: .notifications)
        _ = await fixture.intake.receive(body: Array("not json".utf8), endpoint: .notifications)
        #expect(fixture.lines.all.count == 3)

        fixture.clock.advance(by: .milliseconds(500))  // 1 s after the first line
        _ = await fixture.intake.receive(body: Self.body([Self.item(id: "stranger-late")]), endpoint: .notifications)
        let lines = fixture.lines.all
        try #require(lines.count == 4, "\(lines)")
        let next = try Self.object(lines[3])
        #expect(next["bridge.subscription_id"] as? String == "stranger-late")
        #expect(next["bridge.suppressed_lines"] as? String == "49")
        #expect(try Self.object(lines[0])["bridge.suppressed_lines"] == nil)
    }

    @Test("the handler escapes C0, DEL and C1 in messages, keys and values, in both formats")
    func handlerEscaping() throws {
        let hostile = "a\u{0}b\u{7}c\td\u{1B}]0;title\u{7}e\u{7F}f\u{80}g\u{9F}h"
        for format in BridgeLogHandler.Format.allCases {
            let lines = LineCollector()
            lines.logger(format).warning("message \(hostile)", metadata: ["k\nx": "\(hostile)", "plain": "ok"])
            let line = try #require(lines.all.first)
            #expect(lines.all.count == 1)
            #expect(!line.unicodeScalars.dropLast().contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "\(format): \(line)")
            #expect(line.contains(#"a\u0000b\u0007c\td\u001b]0;title\u0007e\u007ff\u0080g\u009fh"#), "\(format): \(line)")
            if format == .json {
                let object = try Self.object(line)
                #expect(object["message"] as? String == "message \(hostile)")
                #expect(object["k\nx"] as? String == hostile)
                #expect(object["plain"] as? String == "ok")
            } else {
                #expect(line.contains(#" k\nx=""#) && line.contains(" plain=ok"))
            }
        }
    }
}
