/// A file-system path from the config. Relative paths are resolved against the config file's
/// folder when decoded (`~/` against `HOME`), and `.`/`..` are folded, so `path` is absolute.
/// Symlinks are left alone and nothing is checked for existence.
public struct ConfigPath: Decodable, Sendable, Hashable, CustomStringConvertible {
    /// The absolute path.
    public var path: String
    /// Where the path is written in the file, when it came from one: for positioned messages about
    /// the file it names (`check`'s file checks). Not part of equality.
    public var mark: ConfigMark?

    /// Takes `path` as it is (give an absolute one).
    public init(_ path: String) {
        self.path = path
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.configScalar(expected: "a path")
        guard !text.isEmpty else {
            throw decoder.configErrorWithPath("expected a path, found an empty string")
        }
        let base: String
        var home: String?
        if let decoder = decoder as? NodeDecoder {
            base = decoder.context.document.directory
            home = decoder.context.environment["HOME"]
            mark = decoder.node.mark
        } else {
            base = FileSystem.currentDirectory()
        }
        if let home, text == "~" || text.hasPrefix("~/") {
            path = PathResolution.absolute(String(text.dropFirst(2)), base: home)
        } else {
            path = PathResolution.absolute(text, base: base)
        }
    }

    public var description: String { path }

    public static func == (lhs: ConfigPath, rhs: ConfigPath) -> Bool { lhs.path == rhs.path }
    public func hash(into hasher: inout Hasher) { hasher.combine(path) }
}
