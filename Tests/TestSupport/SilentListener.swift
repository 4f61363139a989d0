import Foundation
import Synchronization

/// A TCP socket on 127.0.0.1 that listens and never accepts: connections complete in the kernel's
/// backlog, and nothing is ever answered. Stands for a port another process holds, and for a
/// server that hangs (a Graph that never answers). Closed when released.
public final class SilentListener: Sendable {
    public let port: Int
    private let descriptor: Int32
    /// Connections taken by ``nextConnection()``, held open and unanswered until the listener goes.
    private let held = Mutex<[Int32]>([])

    public init() throws {
        (descriptor, port) = try bindLoopback(port: 0, listening: true)
    }

    /// Waits (on a thread of its own) for a client to connect and holds its connection open,
    /// answering nothing: for a test that must know a client is now waiting for an answer.
    public func nextConnection() async {
        let descriptor = self.descriptor
        let connection = await onOwnThread { accept(descriptor, nil, nil) }
        if connection >= 0 { held.withLock { $0.append(connection) } }
    }

    deinit {
        for connection in held.withLock({ $0 }) { close(connection) }
        close(descriptor)
    }
}
