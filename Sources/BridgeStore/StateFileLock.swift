import Foundation

/// One `run` per SQLite state file: an exclusive `flock` on the file, held for the life of the
/// process. A second bridge on the same file would route every event and renew every
/// subscription twice; it is refused at start instead.
///
/// `flock` locks are independent of the POSIX record locks SQLite takes on the same file, and
/// belong to this descriptor alone, so SQLite's own opens and closes never release it. The kernel
/// drops the lock when the process dies, `kill -9` included: a crash never leaves the file locked.
/// Read-only commands (`subscriptions`, `dead-letters`) do not take it and work beside a running
/// bridge.
public final class StateFileLock: Sendable {
    public let path: String
    private let descriptor: Int32

    /// Creates the file (mode 0600) when missing and locks it; throws when another process holds it.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            let folder = (path as NSString).deletingLastPathComponent
            if code == ENOENT { throw StoreError.cannotCreate(path, reason: "the folder \(folder) does not exist") }
            throw StoreError.cannotCreate(path, reason: String(cString: strerror(code)))
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw StoreError.inUse(path) }
            throw StoreError.cannotCreate(path, reason: "cannot lock it: \(String(cString: strerror(code)))")
        }
        descriptor = fd
    }

    deinit {
        close(descriptor)  // releases the lock
    }
}
