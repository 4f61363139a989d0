public import SinkAPI
import Foundation
import Synchronization

/// `type: file`: appends each event as one JSON line (SPEC section 6), written with a single
/// `write(2)` on an `O_APPEND` descriptor before the delivery counts as done. Events queued
/// together go in one `write(2)` (and one fsync), up to ``batchLimit`` lines, in journal order.
///
/// ## Configuration keys
/// - `path` (required): the file; relative to the config's folder. Its folder must exist.
///   Renamed or removed (log rotation) → reopened (and created if need be) on the next event.
/// - `mode`: the permissions the file is created with, an octal string such as `"0640"`.
///   Default `"0600"` (events hold mail subjects and addresses). An existing file keeps its own.
/// - `fsync`: `true` to also fsync after every event (survives power loss; slower). Default `false`.
public struct FileSink: Sink {
    public static let typeName = "file"

    public struct Configuration: Decodable, Sendable {
        public var path: String
        public var fsync: Bool
        /// The permission bits a new file gets (`0o600` unless `mode:` says otherwise).
        public var mode: Int

        /// `0600`: only the bridge's user reads what it writes, unless the configuration widens it.
        public static let defaultMode = 0o600

        enum CodingKeys: String, CodingKey { case path, fsync, mode }

        public init(path: String, fsync: Bool = false, mode: Int = Configuration.defaultMode) {
            self.path = path
            self.fsync = fsync
            self.mode = mode
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.path = try container.decode(PathInExistingFolder.self, forKey: .path).path
            self.fsync = try container.decodeIfPresent(Bool.self, forKey: .fsync) ?? false
            self.mode = try container.decodeIfPresent(FileMode.self, forKey: .mode)?.bits ?? Self.defaultMode
        }
    }

    /// `mode:`: three or four octal digits (`"0640"`, `"640"`), permission bits only, and the
    /// bridge's own user must be able to write the file.
    struct FileMode: Decodable {
        var bits: Int

        init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            let digits = text.hasPrefix("0") && text.count == 4 ? text.dropFirst() : Substring(text)
            guard digits.count == 3, digits.allSatisfy({ ("0"..."7").contains($0) }), let bits = Int(digits, radix: 8) else {
                throw decoder.configError(
                    "mode must be octal permission bits like \"0600\" or \"0640\" "
                        + "(three digits 0-7 after an optional 0; no setuid, setgid or sticky bit)")
            }
            guard bits & 0o200 != 0 else {
                throw decoder.configError("mode \(text) does not let the bridge write the file: the owner needs write permission (e.g. \"0600\")")
            }
            self.bits = bits
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
    let mode: mode_t
    let writer: BlockingWriter
    let file: OpenFile

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.path = configuration.path
        self.fsync = configuration.fsync
        self.mode = mode_t(configuration.mode)
        self.writer = BlockingWriter(label: "graph-bridge.sink.\(name)")
        self.file = OpenFile()
    }

    /// Lines per `write(2)` when events are queued: a drain writes about 64 KB at a time.
    public var batchLimit: Int { 128 }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        var line = event.encoded()
        line.append(0x0A)
        try await append(line)
    }

    /// One `write(2)` for the whole batch: all its lines land, or the batch is tried again (a
    /// write that failed part way may leave some lines twice: at-least-once).
    public func deliver(batch: [SinkDelivery]) async throws {
        var lines: [UInt8] = []
        for item in batch {
            lines.append(contentsOf: item.event.encoded())
            lines.append(0x0A)
        }
        try await append(lines)
    }

    private func append(_ bytes: [UInt8]) async throws {
        let path = self.path
        let fsync = self.fsync
        let mode = self.mode
        let file = self.file
        try await writer.run { try file.append(bytes, to: path, mode: mode, fsync: fsync) }
    }
}

/// The sink's descriptor, only touched on the sink's own writer queue.
final class OpenFile: Sendable {
    private let state = Mutex<(fd: Int32, inode: ino_t)?>(nil)

    func append(_ bytes: [UInt8], to path: String, mode: mode_t, fsync shouldSync: Bool) throws {
        let fd = try descriptor(for: path, mode: mode)
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
    private func descriptor(for path: String, mode: mode_t) throws -> Int32 {
        try state.withLock { current in
            var info = stat()
            if let open = current {
                if stat(path, &info) == 0, info.st_ino == open.inode { return open.fd }
                Glibc.close(open.fd)
                current = nil
            }
            var created = true
            var fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd < 0, errno == EEXIST {
                created = false
                fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            }
            guard fd >= 0 else {
                throw SinkError.retryable("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            if created { fchmod(fd, mode) }  // the umask may have taken bits away; `mode` is the contract
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
