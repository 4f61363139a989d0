/// Reads the three date forms HTTP allows (RFC 9110 §5.6.7), for `Retry-After`:
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and
/// asctime `Sun Nov  6 08:49:37 1994`. The weekday is not checked; the time is always UTC.
enum HTTPDate {
    /// Seconds since 1970-01-01T00:00:00Z, or nil when `text` is none of the three forms.
    static func secondsSinceEpoch(_ text: String) -> Int64? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map(String.init)
        // IMF-fixdate and RFC 850: weekday day month year time GMT; asctime: weekday month day time year.
        let day: Int, month: Int, year: Int, clock: String
        if tokens.count == 6, tokens[5] == "GMT", let d = Int(tokens[1]), let m = monthNumber(tokens[2]), let y = Int(tokens[3]) {
            (day, month, clock) = (d, m, tokens[4])
            // RFC 850's two-digit year on a fixed pivot: 70-99 are 19xx, 00-69 are 20xx. (RFC 9110 asks for a
            // window sliding with today; the two differ only for 2070-2076 read today, not a Retry-After anyone sends.)
            year = tokens[3].count == 2 ? (y < 70 ? 2000 + y : 1900 + y) : y
        } else if tokens.count == 5, let m = monthNumber(tokens[1]), let d = Int(tokens[2]), let y = Int(tokens[4]) {
            (day, month, year, clock) = (d, m, y, tokens[3])
        } else {
            return nil
        }
        let parts = clock.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 3, (1...31).contains(day), (0...23).contains(parts[0]), (0...59).contains(parts[1]),
            (0...60).contains(parts[2]), (1...9999).contains(year)
        else { return nil }
        return daysSinceEpoch(year: year, month: month, day: day) * 86_400 + Int64(parts[0] * 3600 + parts[1] * 60 + parts[2])
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func monthNumber(_ name: String) -> Int? {
        months.firstIndex(of: name.lowercased()).map { $0 + 1 }
    }

    /// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

/// The date and time of RFC 5322's and RFC 9110's date formats, in UTC, for seconds since 1970:
/// `Sun, 06 Nov 1994 08:49:37`. The `Date` header (IMF-fixdate) adds ` GMT`, a mail's `Date:`
/// ` +0000`. Arithmetic only (``civilFromDays(_:)``): no formatter, no locale.
public func utcDayAndTime(_ seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let (year, month, day) = civilFromDays(Int(days))
    let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday
    let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let time = "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
    return "\(weekdays[Int(weekday)]), \(two(Int64(day))) \(months[month - 1]) \(year) \(time)"
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
public func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
