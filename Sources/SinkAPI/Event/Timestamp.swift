public import Foundation

/// RFC 3339 UTC timestamps with milliseconds, as events carry them: `2026-11-29T10:00:00.123Z`.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        // Nearest, not down: event dates are whole milliseconds already, and x/1000*1000 may land just below x.
        var milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        if milliseconds < 0 { milliseconds = 0 }
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
    }

    /// Parses RFC 3339 / ISO 8601 timestamps with or without fractional seconds (Graph sends seven digits).
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
        return nil
    }
}
