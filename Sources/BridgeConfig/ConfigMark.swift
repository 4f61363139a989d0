/// A position in the config file, 1-based (libyaml's marks are 0-based; they are converted on the way in).
public struct ConfigMark: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The line, counting from 1.
    public var line: Int
    /// The column in characters, counting from 1.
    public var column: Int

    /// A position from 1-based `line` and `column`.
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `LINE:COL`, as it appears in error messages.
    public var description: String { "\(line):\(column)" }

    public static func < (lhs: ConfigMark, rhs: ConfigMark) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    /// The start of the file.
    static let start = ConfigMark(line: 1, column: 1)
}
