import BridgeConfig
public import BridgeCore
import Foundation
import Synchronization

/// `type: file`: appends each event as one JSON line (SPEC section 6), written with a single
/// `write(2)` on an `O_APPEND` descriptor before the delivery counts as done.
///
/// ## Configuration keys
/// - `path` (required): the file; relative to the config's folder. Its folder must exist.
///   Created with mode 0640. Renamed or removed (log rotation) → reopened on the next event.
/// - `fsync`: `true` to also fsync after every event (survives power loss; slower). Default `false`.
public struct FileSink: Sink {
    public static let typeName = "file"

    public struct Configuration: Decodable, Sendable {
        public var path: String
        public var fsync: Bool

        enum CodingKeys: String, CodingKey { case path, fsync }

        public init(path: String, fsync: Bool = false) {
            self.path = path
            self.fsync = fsync
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.path = try container.decode(PathInExistingFolder.self, forKey: .path).path
            self.fsync = try container.decodeIfPresent(Bool.self, forKey: .fsync) ?? false
        }
    }

    /// A path whose folder exists; checked at load so `check` reports it at the `path:` line.
    struct PathInExistingFolder: Decodable {
        var path: String

        init(from decoder: any Decoder) throws {
            path = try ConfigPath(from: decoder).path
            let folder = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw decoder.configError("the folder of file sink path \(path) does not exist (create \(folder) first)")
            }
        }
    }

    let path: String
    let fsync: Bool
    let writer: BlockingWriter
    let file: OpenFile

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.path = configuration.path
        self.fsync = configuration.fsync
        self.writer = BlockingWriter(label: "graph-bridge.sink.\(name)")
        self.file = OpenFile()
    }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        var line = event.encoded()
        line.append(0x0A)
        let bytes = line
        let path = self.path
        let fsync = self.fsync
        let file = self.file
        try await writer.run { try file.append(bytes, to: path, fsync: fsync) }
    }
}

/// The sink's descriptor, only touched on the sink's own writer queue.
final class OpenFile: Sendable {
    private let state = Mutex<(fd: Int32, inode: ino_t)?>(nil)

    func append(_ bytes: [UInt8], to path: String, fsync shouldSync: Bool) throws {
        let fd = try descriptor(for: path)
        if let error = writeFully(fd, bytes) {
            close(path: path)
            throw SinkError.retryable("writing \(path) failed: \(String(cString: strerror(error)))")
        }
        if shouldSync, fsync(fd) != 0 {
            let error = errno
            close(path: path)
            throw SinkError.retryable("fsync of \(path) failed: \(String(cString: strerror(error)))")
        }
    }

    /// The open descriptor, reopened when the file at `path` is no longer the one we hold (rotated).
    private func descriptor(for path: String) throws -> Int32 {
        try state.withLock { current in
            var info = stat()
            if let open = current {
                if stat(path, &info) == 0, info.st_ino == open.inode { return open.fd }
                Glibc.close(open.fd)
                current = nil
            }
            var created = true
            var fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            if fd < 0, errno == EEXIST {
                created = false
                fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            }
            guard fd >= 0 else {
                throw SinkError.retryable("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            if created { fchmod(fd, 0o640) }  // the umask may have taken bits away; 0640 is the contract
            guard fstat(fd, &info) == 0 else {
                Glibc.close(fd)
                throw SinkError.retryable("cannot stat \(path): \(String(cString: strerror(errno)))")
            }
            current = (fd, info.st_ino)
            return fd
        }
    }

    private func close(path: String) {
        state.withLock { current in
            if let open = current { Glibc.close(open.fd) }
            current = nil
        }
    }
}
