public import Foundation
import Transport

/// The date formats Graph and the identity platform write, and a lenient ISO 8601 reader for what
/// clients send. Pure arithmetic on UTC (no calendars, no locale).
public enum GraphDate {
    /// Subscription and notification format: `2016-11-20T18:23:45.9356913Z` (seven fraction digits).
    public static func subscriptionFormat(_ date: Date) -> String {
        let (seconds, fraction) = split(date)
        let ticks = Int((fraction * 10_000_000).rounded(.down))
        return civil(seconds) + "." + pad(ticks, 7) + "Z"
    }

    /// Message property format: `2016-10-19T10:37:00Z`.
    public static func secondsFormat(_ date: Date) -> String {
        civil(split(date).seconds) + "Z"
    }

    /// `innerError.date`: `2021-12-15T01:31:15` (no zone designator, as Graph writes it).
    static func innerErrorFormat(_ date: Date) -> String {
        civil(split(date).seconds)
    }

    /// The identity platform's `timestamp`: `2016-04-11 18:00:12Z`.
    static func identityTimestamp(_ date: Date) -> String {
        civil(split(date).seconds).replacingOccurrences(of: "T", with: " ") + "Z"
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`; no zone means UTC (Graph's reading of
    /// `expirationDateTime`). Nil when the text is not such a date.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard bytes.count >= 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") || bytes[10] == UInt8(ascii: " "),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                fraction += Double(bytes[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        if index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                index += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                guard let hours = number(index + 1..<index + 3), index + 3 < bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                    let minutes = number(index + 4..<index + 6)
                else { return nil }
                offset = sign * (hours * 3600 + minutes * 60)
                index += 6
            default:
                return nil
            }
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    // MARK: Arithmetic

    private static func split(_ date: Date) -> (seconds: Int, fraction: Double) {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        return (Int(seconds), interval - seconds)
    }

    private static func civil(_ seconds: Int) -> String {
        let days = Int((Double(seconds) / 86_400).rounded(.down))
        let rest = seconds - days * 86_400
        let (year, month, day) = civilFromDays(days)
        return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(rest / 3600, 2) + ":" + pad(rest % 3600 / 60, 2) + ":"
            + pad(rest % 60, 2)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
