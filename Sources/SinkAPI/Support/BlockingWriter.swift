import Dispatch
import Foundation

/// Runs blocking file-descriptor work (write, fsync, open) on a serial Dispatch queue of its own,
/// never on the cooperative pool: a stalled pipe or disk stalls only the sink that owns it.
public final class BlockingWriter: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        self.queue = DispatchQueue(label: label)
    }

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try work() })
            }
        }
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR. Returns errno on failure.
public func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { buffer in
            write(fd, buffer.baseAddress! + offset, buffer.count - offset)
        }
        if written < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += written
    }
    return nil
}
