import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A port on 127.0.0.1 where every connection is refused, for as long as this value is held: a TCP
/// socket bound to it that never listens. On Linux a connect to it gets a reset (`ECONNREFUSED`,
/// curl's `couldNotConnect`), and while the socket is bound no other bind (to port 0 or to this
/// number) and no outgoing connection's ephemeral port can take the number. A port that was bound,
/// read back and closed again gives no such promise: in a parallel run another test may be listening
/// on it by the time it is used.
///
/// Stands for an unreachable SMTP server, webhook, Graph or authority. Keep the value alive until
/// the test is done with the port: ``withRefusingPort(_:)``, or `defer { refusing.close() }`
/// (Swift may release an object after its last use, before the end of its scope).
public final class RefusingPort: Sendable {
    /// The refusing port's number.
    public let port: Int
    private let descriptor: Mutex<Int32?>

    /// Binds a socket to 127.0.0.1, port 0, and keeps it bound without listening.
    public init() throws {
        let (fd, port) = try bindLoopback(port: 0, listening: false)
        self.port = port
        descriptor = Mutex(fd)
    }

    /// Releases the port now (once; `deinit` does it otherwise). Connections are refused until then.
    public func close() {
        if let fd = descriptor.withLock({ $0.take() }) { Glibc.close(fd) }
    }

    deinit { close() }
}

/// Runs `body` with the number of a ``RefusingPort`` held until `body` returns or throws.
public func withRefusingPort<T>(_ body: (Int) async throws -> T) async throws -> T {
    let refusing = try RefusingPort()
    defer { refusing.close() }
    return try await body(refusing.port)
}

/// A port on 127.0.0.1 for a process the test starts later and must tell the number before it
/// starts (a bridge whose `publicUrl` names its own listener, the Graph simulator on `--port`, a
/// PostgreSQL server), or that must bind the same number again after a restart (the same public URL
/// across restarts, as in production).
///
/// Where the number is not needed up front, let the child bind port 0 and read its port back
/// (`BridgeProcess.port()`, the simulator's banner) instead: that has no race at all.
///
/// Why not bind port 0, close it and hand the number on: the kernel gives numbers from its ephemeral
/// range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default) to every bind to port 0
/// and every outgoing connection, so in a parallel run another test can hold that number before the
/// child binds it. These ports come from below that range (20000 up to its lower end), which neither
/// a bind to port 0 nor an outgoing connection ever picks. Each number is handed out at most once per
/// test process, only after a bind to it succeeded (nothing holds it now), and with a lock file
/// (`flock` on `graph-bridge-test-ports/PORT` in the temporary folder) held until the process ends,
/// so that another test process on this machine (a second `swift test`) skips it. Only a program
/// that binds a fixed port in this range could still take it between this call and the child's bind.
public func reservedLoopbackPort() throws -> Int {
    try ReservedPorts.shared.next()
}

/// The state behind ``reservedLoopbackPort()``: the next number to try, and the lock files held.
private final class ReservedPorts: Sendable {
    static let shared = ReservedPorts()

    static let lowest = 20000
    private static let lockFolder = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-test-ports").path

    /// The next candidate, and the lock files of the ports handed out (open until the process ends).
    private let state = Mutex<(next: Int, locks: [Int32])>((lowest, []))

    func next() throws -> Int {
        let end = Self.ephemeralLow()
        try? FileManager.default.createDirectory(atPath: Self.lockFolder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        return try state.withLock { state in
            while state.next < end {
                let port = state.next
                state.next += 1
                guard let lock = Self.lock(port) else { continue }
                guard let (fd, _) = try? bindLoopback(port: port, listening: false) else {
                    Glibc.close(lock)
                    continue
                }
                Glibc.close(fd)
                state.locks.append(lock)
                return port
            }
            throw HTTPReceiver.StartError(
                description: "no port left between \(Self.lowest) and \(end) (the low end of /proc/sys/net/ipv4/ip_local_port_range)")
        }
    }

    /// The lock file of `port`, locked for this process; nil when another process holds it.
    private static func lock(_ port: Int) -> Int32? {
        let fd = open(lockFolder + "/\(port)", O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    /// The low end of the kernel's ephemeral port range (32768 when it cannot be read).
    static func ephemeralLow() -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
    }
}

/// A TCP socket bound to 127.0.0.1:`port` (0: the kernel picks), listening or not, and its port.
func bindLoopback(port: Int, listening: Bool) throws -> (descriptor: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPReceiver.StartError(description: "socket() failed: \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bind(fd, address, length) == 0 && (!listening || listen(fd, 128) == 0) && getsockname(fd, address, &length) == 0
        }
    }
    guard bound else {
        let message = String(cString: strerror(errno))
        Glibc.close(fd)
        throw HTTPReceiver.StartError(description: "bind\(listening ? "/listen" : "") on 127.0.0.1:\(port) failed: \(message)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
