/// A size in bytes: `512`, `64KiB`, `1MiB`, `2GiB` (binary), `1KB`, `1MB`, `1GB` (decimal);
/// units are case-insensitive and may follow a space.
public struct ConfigByteSize: Decodable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var bytes: Int

    public init(bytes: Int) {
        self.bytes = bytes
    }

    static let units: [String: Int] = [
        "": 1, "b": 1,
        "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
        "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
    ]

    static let expectation = "a size like 512, 64KiB, 1MiB, 2GiB or 1MB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"

    public init(from decoder: any Decoder) throws {
        let text = try decoder.configScalar(expected: Self.expectation)
        guard let bytes = Self.parse(text) else {
            throw decoder.configErrorWithPath(
                "expected \(Self.expectation), found \(decoder.configFoundDescription(text))"
            )
        }
        self.bytes = bytes
    }

    /// Parses `64KiB`-style text; nil when it is not one or does not fit in an `Int`.
    public static func parse(_ text: String) -> Int? {
        let number = text.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = text.dropFirst(number.count).drop { $0 == " " }.lowercased()
        guard let multiplier = units[unit], !number.isEmpty, number.first != ".",
            number.filter({ $0 == "." }).count <= 1
        else {
            return nil
        }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard let whole = Int(parts[0]) else { return nil }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        guard parts.count == 2 else { return scaled }
        guard !parts[1].isEmpty, let fraction = Double("0." + parts[1]) else { return nil }
        let (sum, sumOverflow) = scaled.addingReportingOverflow(Int(fraction * Double(multiplier)))
        return sumOverflow ? nil : sum
    }

    /// The largest binary unit that divides the size exactly: `1MiB`, `1536KiB`, `100`.
    public var description: String {
        for (suffix, size) in [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes != 0 && bytes % size == 0 {
            return "\(bytes / size)\(suffix)"
        }
        return "\(bytes)"
    }

    public static func < (lhs: ConfigByteSize, rhs: ConfigByteSize) -> Bool {
        lhs.bytes < rhs.bytes
    }
}
