import Foundation
import Testing
@testable import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The two ways tests get a loopback port number without binding port 0 and closing it again.
@Suite("loopback ports")
struct LoopbackPortsTests {
    @Test("a refusing port refuses connections (curl and a raw connect) and cannot be bound by anyone else while it is held")
    func refusingPortRefuses() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let curl = try await commandOutput(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:\(refusing.port)/"])
        #expect(curl.status == 7, "curl: couldn't connect: \(curl.output)")
        #expect(curl.output.contains("Connection refused") || curl.output.contains("Couldn't connect"), "\(curl.output)")
        let connect = await #expect(throws: RawConnectionError.self) { try await RawConnection.open(port: refusing.port) }
        #expect("\(String(describing: connect))".contains("Connection refused"), "\(String(describing: connect))")
        let bind = #expect(throws: HTTPReceiver.StartError.self) { try bindLoopback(port: refusing.port, listening: true) }
        #expect(bind?.description.contains("Address already in use") == true, "\(String(describing: bind))")
    }

    @Test("withRefusingPort holds the port for its whole body")
    func scopedRefusingPort() async throws {
        try await withRefusingPort { port in
            #expect(throws: HTTPReceiver.StartError.self) { try bindLoopback(port: port, listening: false) }
            let curl = try await commandOutput(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:\(port)/"])
            #expect(curl.status == 7, "\(curl.output)")
        }
    }

    @Test("reserved ports lie below the kernel's ephemeral range, are distinct, bindable, and locked against other test processes")
    func reservedPorts() async throws {
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let low = try #require(range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        let ports = try (0..<5).map { _ in try reservedLoopbackPort() }
        #expect(Set(ports).count == ports.count, "\(ports)")
        for port in ports {
            #expect(port >= 20000 && port < low, "\(port) is outside 20000..<\(low)")
            // A child can bind it (and bind it again after a restart).
            let (fd, bound) = try bindLoopback(port: port, listening: true)
            #expect(bound == port)
            close(fd)
            // Another process finds its lock taken.
            let lockFile = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-test-ports/\(port)").path
            let other = try await commandOutput(["flock", "--nonblock", "--conflict-exit-code", "3", lockFile, "true"])
            #expect(other.status == 3, "the lock of \(port) is not held: \(other.output)")
        }
    }
}
