/// One configuration error.
///
/// `description` is exactly `FILE:LINE:COL: message`, or `FILE: message` when there is no position
/// (for example an unreadable file). This is the line `graph-bridge check` prints.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The config file as the user named it.
    public var file: String
    /// Where the problem is, when it has a place in the file.
    public var mark: ConfigMark?
    /// What is wrong, and where it helps, what to do about it.
    public var message: String

    public init(file: String, mark: ConfigMark?, message: String) {
        self.file = file
        self.mark = mark
        self.message = message
    }

    public var description: String {
        if let mark {
            return "\(file):\(mark.line):\(mark.column): \(message)"
        }
        return "\(file): \(message)"
    }

    /// File order: by file name, then errors without a position, then by position, then by message.
    static func inFileOrder(_ lhs: ConfigError, _ rhs: ConfigError) -> Bool {
        if lhs.file != rhs.file { return lhs.file < rhs.file }
        switch (lhs.mark, rhs.mark) {
        case (nil, .some): return true
        case (.some, nil): return false
        case (let l?, let r?) where l != r: return l < r
        default: return lhs.message < rhs.message
        }
    }
}

/// Several configuration errors at once: what `graph-bridge check` prints, one per line, in file order.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    /// The errors, in file order (by file, then position; errors without a position first).
    public var errors: [ConfigError]

    /// Sorts `errors` into file order and drops exact duplicates.
    public init(errors: [ConfigError]) {
        var seen = Set<ConfigError>()
        self.errors = errors.sorted(by: ConfigError.inFileOrder).filter { seen.insert($0).inserted }
    }

    /// Same as `init(errors:)`.
    public init(_ errors: [ConfigError]) {
        self.init(errors: errors)
    }

    /// Whether there is nothing to report.
    public var isEmpty: Bool { errors.isEmpty }

    /// One `FILE:LINE:COL: message` line per error.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
