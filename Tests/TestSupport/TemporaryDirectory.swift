public import Foundation

/// A fresh folder under the system's temporary folder, removed with the object: the one every
/// test target uses for state files, sink files, configurations and certificates.
///
/// The path has symbolic links resolved (a child process that reports its working folder
/// resolved compares equal), and its name starts with `prefix` so a folder left behind by a
/// killed test run says which suite made it.
public final class TemporaryDirectory: Sendable {
    /// The folder's absolute path.
    public let path: String

    public init(prefix: String = "graph-bridge-test") {
        let made = FileManager.default.temporaryDirectory.path + "/\(prefix)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true)
        path = URL(fileURLWithPath: made).resolvingSymlinksInPath().path
    }

    /// The folder as a file URL.
    public var url: URL { URL(fileURLWithPath: path, isDirectory: true) }

    /// The path of `name` inside the folder.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `text` to `name` inside the folder and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) -> String {
        let path = file(name)
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
