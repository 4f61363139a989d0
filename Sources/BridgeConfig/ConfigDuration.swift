/// A duration written with units: `30s`, `5m`, `2h`, `1d`, `500ms`, compounds like `1h30m`, and
/// fractions like `1.5h`. A plain number is an error (which unit would it be?).
public struct ConfigDuration: Decodable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var duration: Duration

    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// The duration in seconds.
    public var seconds: Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static let units: [(suffix: String, nanoseconds: Int64)] = [
        ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
        ("d", 86_400_000_000_000),
    ]

    static let expectation = "a duration like 30s, 5m, 2h, 1d or 1h30m (units: ms, s, m, h, d)"

    public init(from decoder: any Decoder) throws {
        let text = try decoder.configScalar(expected: Self.expectation)
        guard let duration = Self.parse(text) else {
            throw decoder.configErrorWithPath(
                "expected \(Self.expectation), found \(decoder.configFoundDescription(text))"
            )
        }
        self.duration = duration
    }

    /// Parses `1h30m`-style text; nil when it is not one.
    public static func parse(_ text: String) -> Duration? {
        var rest = text[...]
        var total: Int64 = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let whole = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(whole.count)
            var fraction: Substring = ""
            if rest.first == "." {
                fraction = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
                guard !fraction.isEmpty else { return nil }
                rest = rest.dropFirst(fraction.count + 1)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { return nil }
            let letters = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(letters.count)
            guard let unit = units.first(where: { $0.suffix == letters })?.nanoseconds else { return nil }
            guard let wholeValue = Int64(whole.isEmpty ? "0" : whole) else { return nil }
            let (scaled, overflow) = wholeValue.multipliedReportingOverflow(by: unit)
            guard !overflow else { return nil }
            var part = scaled
            if !fraction.isEmpty, let digits = Double("0." + fraction) {
                let (withFraction, fractionOverflow) = part.addingReportingOverflow(Int64((digits * Double(unit)).rounded()))
                guard !fractionOverflow else { return nil }
                part = withFraction
            }
            let (sum, sumOverflow) = total.addingReportingOverflow(part)
            guard !sumOverflow, sum >= 0 else { return nil }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// The shortest `1h30m`-style spelling, to the millisecond.
    public var description: String {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return "\(seconds)s" }
        let milliseconds = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).partialValue
        if milliseconds == 0 { return "0s" }
        var text = milliseconds < 0 ? "-" : ""
        var remaining = milliseconds.magnitude
        for (suffix, nanoseconds) in Self.units.reversed() {
            let size = UInt64(nanoseconds / 1_000_000)
            if remaining >= size {
                text += "\(remaining / size)\(suffix)"
                remaining %= size
            }
        }
        return text
    }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool {
        lhs.duration < rhs.duration
    }
}
