import Foundation
import Testing

@testable import SinkAPI

@Suite("Timestamps")
struct TimestampTests {
    /// Dates over the whole four-digit range, the edges of months and leap days among them.
    static var dates: [Date] {
        var generator = SystemRandomNumberGenerator()
        var dates = (0..<2000).map { _ in Date(timeIntervalSince1970: Double(Int64.random(in: 0...253_402_300_799_999, using: &generator)) / 1000) }
        for text in ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z", "2024-02-29T12:00:00Z", "2100-03-01T00:00:00Z", "2026-12-31T23:59:59Z", "9999-12-31T23:59:59Z"] {
            dates.append(try! Date(text, strategy: .iso8601).addingTimeInterval(0.999))
        }
        return dates
    }

    @Test("the canonical form is written as the first, string-padding version wrote it")
    func formatMatchesFirstVersion() {
        for date in Self.dates {
            let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
            var seconds = time_t(milliseconds / 1000)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            #expect(Timestamp.format(date) == Timestamp.formatWide(parts, milliseconds: milliseconds))
        }
    }

    @Test("the canonical form is read as Foundation's ISO 8601 style reads it, to the millisecond")
    func canonicalParseMatchesFoundation() throws {
        for date in Self.dates {
            let text = Timestamp.format(date)
            let fast = try #require(Timestamp.parseCanonical(text))
            let foundation = try Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
            #expect(Int64((fast.timeIntervalSince1970 * 1000).rounded()) == Int64((foundation.timeIntervalSince1970 * 1000).rounded()), "\(text)")
        }
    }

    @Test(
        "anything but the canonical form, or a field out of range, is left to the general parse",
        arguments: [
            "2026-13-01T00:00:00.000Z", "2026-02-29T00:00:00.000Z", "2026-04-31T00:00:00.000Z", "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z", "2026-01-01T00:00:60.000Z", "2026-01-00T00:00:00.000Z", "2026-01-01T00:00:00.0000Z",
            "2026-01-01T00:00:00.000+", "2026-01-01 00:00:00.000Z", "2026-01-01T00:00:0a.000Z", "+026-01-01T00:00:00.000Z",
        ])
    func refusesOthers(text: String) {
        #expect(Timestamp.parseCanonical(text) == nil)
    }

    @Test("Graph's seven fractional digits and plain seconds still parse")
    func otherForms() throws {
        #expect(Timestamp.parse("2026-11-29T10:00:00.1234567Z") != nil)
        #expect(Timestamp.parse("2026-11-29T10:00:00Z") == Timestamp.parse("2026-11-29T10:00:00.000Z"))
    }
}
