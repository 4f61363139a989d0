import Testing

@testable import Transport

/// The calendar arithmetic every date format of the bridge shares (``daysFromCivil(year:month:day:)``,
/// ``civilFromDays(_:)``, ``utcDayAndTime(_:)``).
@Suite struct CivilDateTests {
    @Test func knownDays() {
        #expect(daysFromCivil(year: 1970, month: 1, day: 1) == 0)
        #expect(daysFromCivil(year: 2000, month: 3, day: 1) == 11_017)
        #expect(daysFromCivil(year: 1969, month: 12, day: 31) == -1)
        #expect(civilFromDays(20_795) == (2026, 12, 8))
    }

    @Test func roundTripEveryDayFrom1600To2400() {
        var mismatches = 0
        for days in daysFromCivil(year: 1600, month: 1, day: 1)...daysFromCivil(year: 2400, month: 12, day: 31) {
            let (year, month, day) = civilFromDays(days)
            if daysFromCivil(year: year, month: month, day: day) != days || !(1...12).contains(month) || !(1...31).contains(day) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func dayAndTime() {
        #expect(utcDayAndTime(784_111_777) == "Sun, 06 Nov 1994 08:49:37")
        #expect(utcDayAndTime(0) == "Thu, 01 Jan 1970 00:00:00")
        #expect(utcDayAndTime(-1) == "Wed, 31 Dec 1969 23:59:59")
    }
}
