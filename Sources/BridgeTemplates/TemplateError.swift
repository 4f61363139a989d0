/// Why a template was refused when it was compiled (at config load).
///
/// `line` and `column` count from 1 inside the template text (not the config file: the config
/// error that wraps this one sits at the template's key). `description` is the message with the
/// position appended, the form `graph-bridge check` shows after "invalid template: ".
public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong and, where it helps, what to write instead.
    public var message: String
    /// The line inside the template, when the problem has a place.
    public var line: Int?
    /// The column (in characters) inside the template, when the problem has a place.
    public var column: Int?

    public init(message: String, line: Int? = nil, column: Int? = nil) {
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        guard let line, let column else { return message }
        return "\(message) (template line \(line), column \(column))"
    }
}
