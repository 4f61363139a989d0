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
        return Int64(daysFromCivil(year: year, month: month, day: day)) * 86_400 + Int64(parts[0] * 3600 + parts[1] * 60 + parts[2])
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func monthNumber(_ name: String) -> Int? {
        months.firstIndex(of: name.lowercased()).map { $0 + 1 }
    }
}
