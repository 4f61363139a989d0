import Foundation

/// A TCP socket on 127.0.0.1 that listens and never accepts: connections complete in the kernel's
/// backlog, and nothing is ever answered. Stands for a port another process holds, and for a
/// server that hangs (a Graph that never answers). Closed when released.
public final class SilentListener: Sendable {
    public let port: Int
    private let descriptor: Int32

    public init() throws {
        (descriptor, port) = try bindLoopback(port: 0, listening: true)
    }

    deinit { close(descriptor) }
}
