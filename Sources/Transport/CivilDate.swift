/// Calendar arithmetic on UTC for the date formats the bridge reads and writes (HTTP's `Date` and
/// `Retry-After`, a mail's `Date:`, event timestamps, the simulator's ISO 8601): Howard Hinnant's
/// algorithms on the proleptic Gregorian calendar. No formatter, no locale.

/// Days from 1970-01-01 to the date (Howard Hinnant's `days_from_civil`); `month` 1...12.
public func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

/// The date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
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

private let weekdayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
private let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

/// The date and time of RFC 5322's and RFC 9110's date formats, in UTC, for seconds since 1970:
/// `Sun, 06 Nov 1994 08:49:37`. The `Date` header (IMF-fixdate) adds ` GMT`, a mail's `Date:`
/// ` +0000`.
public func utcDayAndTime(_ seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    let (year, month, day) = civilFromDays(Int(days))
    let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let time = "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
    return "\(weekdayNames[Int(weekday)]), \(two(Int64(day))) \(monthNames[month - 1]) \(year) \(time)"
}
