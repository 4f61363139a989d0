/// What one matcher key must hold (SPEC section 4, "Matchers").
public indirect enum MatchValue: Sendable {
    /// Equal to this text.
    case exact(String)
    /// `*` stands for any run of characters; everything else is literal.
    case glob(String)
    /// Any of these.
    case anyOf([MatchValue])
    /// The whole text matches this regular expression.
    case regex(RegexPattern)
    /// The inner value does not match (a missing field is "not matching").
    case not(MatchValue)

    /// A plain string from the config: a glob when it holds `*`, else exact.
    public static func string(_ text: String) -> MatchValue {
        text.contains("*") ? .glob(text) : .exact(text)
    }

    /// Whether this value matches a field whose scalar texts are `candidates` (several when the
    /// path crossed an array: any of them may match; none when the field is missing).
    public func matches(_ candidates: [String]) -> Bool {
        switch self {
        case .exact(let text): return candidates.contains(text)
        case .glob(let pattern): return candidates.contains { Glob.matches(pattern, $0) }
        case .anyOf(let values): return values.contains { $0.matches(candidates) }
        case .regex(let pattern): return candidates.contains { pattern.wholeMatches($0) }
        case .not(let inner): return !inner.matches(candidates)
        }
    }
}

/// A compiled regular expression with the source it came from.
public struct RegexPattern: Sendable, CustomStringConvertible {
    public let source: String
    // Regex<AnyRegexOutput> is not Sendable; it is immutable after compilation and only ever
    // read through `wholeMatch`, so sharing it across tasks is safe.
    private nonisolated(unsafe) let regex: Regex<AnyRegexOutput>

    public init(_ source: String) throws {
        self.source = source
        self.regex = try Regex(source)
    }

    public func wholeMatches(_ text: String) -> Bool {
        (try? regex.wholeMatch(in: text)) != nil
    }

    public var description: String { source }
}

/// `*`-only globs, matched over Unicode scalars.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let t = Array(text.unicodeScalars)
        var pi = 0
        var ti = 0
        var starPattern = -1
        var starText = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "*" {
                starPattern = pi
                starText = ti
                pi += 1
            } else if pi < p.count, p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if starPattern >= 0 {
                pi = starPattern + 1
                starText += 1
                ti = starText
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
