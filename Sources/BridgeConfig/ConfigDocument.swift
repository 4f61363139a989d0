/// A parsed config file: its node tree plus what error messages and relative paths need.
///
/// Every `ConfigDecoder` built over the same document (or a copy of it) shares one record of
/// which mapping keys were asked for, so `unknownKeyErrors()` sees all their decodes together.
public struct ConfigDocument: Sendable {
    /// The path as given, used in error messages.
    public let file: String
    /// The absolute folder of the file, the base for relative paths.
    public let directory: String
    /// The tree; an empty file is an empty mapping.
    public let root: ConfigNode

    let keyTracker = KeyTracker()

    /// A document over a tree built some other way (tests, defaults). `directory` should be absolute.
    public init(file: String, directory: String, root: ConfigNode) {
        self.file = file
        self.directory = directory
        self.root = root
    }

    /// Reads and parses the file at `path`. An unreadable file is a `ConfigError` with no mark;
    /// a file that is not valid UTF-8 (or UTF-16 with a byte-order mark) is one at the bad byte.
    public static func load(path: String) throws(ConfigError) -> ConfigDocument {
        let absolute = PathResolution.absolute(path, base: FileSystem.currentDirectory())
        switch FileSystem.readFile(path) {
        case .success(let bytes):
            return try parse(bytes: bytes, file: path, directory: PathResolution.directory(of: absolute))
        case .failure(.system(let reason)):
            throw ConfigError(file: path, mark: nil, message: "cannot read the config file: \(reason)")
        case .failure(.tooLarge):
            throw ConfigError(
                file: path, mark: nil,
                message: "the config file is larger than \(FileSystem.maximumFileSize >> 20) MiB; is it the right file?"
            )
        }
    }

    /// Parses YAML text. `file` names it in errors; `directory` is the base for relative paths
    /// (made absolute against the working directory if it is not already).
    public static func parse(_ text: String, file: String, directory: String) throws(ConfigError) -> ConfigDocument {
        try parse(bytes: Array(text.utf8), file: file, directory: directory)
    }

    static func parse(bytes: [UInt8], file: String, directory: String) throws(ConfigError) -> ConfigDocument {
        let root = try YAMLTreeBuilder.parse(bytes, file: file)
        let directory = PathResolution.absolute(directory, base: FileSystem.currentDirectory())
        return ConfigDocument(file: file, directory: directory, root: root)
    }
}
