import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to `127.0.0.1`, byte by byte, for tests of how a listener treats slow,
/// silent or half-sent clients (an HTTP client library would always finish its requests).
/// The blocking socket calls run on Dispatch's threads, never on the cooperative pool.
public final class RawConnection: Sendable {
    /// What one read saw.
    public enum Received: Equatable, Sendable {
        case bytes([UInt8])
        /// The peer closed (end of stream, or a reset).
        case closed
        /// Nothing arrived within the timeout.
        case nothing
    }

    private let descriptor: Int32
    private let isClosed = Mutex(false)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Connects to `127.0.0.1:port`. On loopback the connect completes as soon as the kernel has the
    /// connection in the listen backlog, whether or not the server has accepted it.
    public static func open(port: Int) async throws -> RawConnection {
        try await offPool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw RawConnectionError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else {
                let message = String(cString: strerror(errno))
                Glibc.close(fd)
                throw RawConnectionError("connect to 127.0.0.1:\(port): \(message)")
            }
            return RawConnection(descriptor: fd)
        }
    }

    /// Writes all of `text`; throws once the peer has closed.
    public func send(_ text: String) async throws {
        let bytes = Array(text.utf8)
        try await Self.offPool { [descriptor] in
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw RawConnectionError("send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
    }

    /// One read: what arrived within `timeout`, the peer's close, or nothing.
    public func receive(timeout: Duration) async -> Received {
        await Self.offPool { [descriptor] in
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            guard poll(&poller, 1, milliseconds) > 0 else { return .nothing }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            return n > 0 ? .bytes(Array(buffer[..<n])) : .closed
        }
    }

    /// Reads until the peer closes or `timeout` passes; whether it closed, and when (since the call).
    public func waitForClose(timeout: Duration) async -> (closed: Bool, after: Duration) {
        let started = ContinuousClock.now
        let deadline = started + timeout
        while ContinuousClock.now < deadline {
            if await receive(timeout: deadline - ContinuousClock.now) == .closed {
                return (true, ContinuousClock.now - started)
            }
        }
        return (false, ContinuousClock.now - started)
    }

    /// One whole HTTP/1.1 response (head and a `Content-Length` body) within `timeout`; nil when
    /// none arrived in time or the peer closed first.
    public func receiveResponse(timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        while ContinuousClock.now < deadline {
            switch await receive(timeout: deadline - ContinuousClock.now) {
            case .bytes(let more): bytes += more
            case .closed, .nothing: return nil
            }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound].lowercased()
            let length =
                head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            if text.utf8.distance(from: end.upperBound, to: text.endIndex) >= length { return text }
        }
        return nil
    }

    /// Closes the connection (once).
    public func close() {
        let first = isClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first { Glibc.close(descriptor) }
    }

    deinit { close() }

    /// Blocking socket calls run on a thread of their own (``onOwnThread(_:)``), never on a
    /// Dispatch global queue, whose threads Swift's tasks share on Linux.
    private static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await onOwnThread(work)
    }

    private static func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await onOwnThread(work)
    }
}

/// A socket call that failed, with what the system said.
public struct RawConnectionError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
