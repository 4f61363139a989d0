import CurlKit
import Foundation
import TestSupport
import Testing

/// Slow clients against the real binary: a thousand silent connections and a hundred half-sent
/// requests, while Graph's notification must still be answered (docs/reliability.md has the figures).
@Suite("slow clients end to end", .serialized, .machine(.exclusive))
struct SlowClientEndToEndTests {
    static func config(idle: String, request: String, maxConnections: Int) -> String {
        EndToEndTests.config().replacingOccurrences(
            of: "  admin: { listen: 127.0.0.1:0 }",
            with: "  admin: { listen: 127.0.0.1:0 }\n  idleTimeout: \(idle)\n  requestTimeout: \(request)\n  maxConnections: \(maxConnections)")
    }

    /// Open file descriptors of a process (its sockets among them).
    static func descriptors(of pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A `/proc` file's text, read to its end (they report a size of 0, which Foundation's readers believe).
    static func procFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            data += buffer[..<count]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The connections to local `port` that process `pid` has accepted: its sockets (by inode, from
    /// `/proc/PID/fd`) that `/proc/net/tcp` lists with that local port and not listening. Unlike
    /// the count of all descriptors, nothing else the process opens meanwhile (store files, the
    /// event loops' descriptors) counts, and connections still in the kernel's accept queue do not.
    static func acceptedConnections(of pid: Int32, port: Int) -> Int {
        let fdFolder = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fdFolder)) ?? []
        let inodes = Set(names.compactMap { name -> Substring? in
            var buffer = [CChar](repeating: 0, count: 64)
            let length = readlink(fdFolder + "/" + name, &buffer, buffer.count - 1)
            guard length > 0 else { return nil }
            let target = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:[") else { return nil }
            return Substring(target.dropFirst("socket:[".count).dropLast())
        })
        let portHex = String(format: "%04X", port)
        var count = 0
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = Self.procFile(table)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                guard fields.count > 9, fields[1].hasSuffix(":" + portHex), fields[3] != "0A", inodes.contains(fields[9]) else { continue }
                count += 1
            }
        }
        return count
    }

    /// maxConnections is above the flood here: the cap's own effect is `overTheCap`'s.
    @Test("1000 silent and 100 half-sent connections: a notification is answered at once, and all of them are closed after the timeouts")
    func flood() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config(idle: "3s", request: "3s", maxConnections: 2000))
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let idleDescriptors = Self.descriptors(of: bridge.pid)

        // A hundred at a time, each hundred once the bridge has accepted the one before: a burst
        // faster than the bridge accepts overflows the listen backlog, and the kernel's SYN
        // retransmits, not the bridge, then decide when a connection gets in (docs/reliability.md).
        let opened = ContinuousClock.now
        var connections: [RawConnection] = []
        for batch in 0..<11 {
            for _ in 0..<100 {
                let connection = try await RawConnection.open(port: port)
                if batch == 10 {  // the last hundred: a head, then a body that stops
                    try await connection.send("POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n{\"value\":[")
                }
                connections.append(connection)
            }
            // Paced by the descriptor count, which is cheap to read every 20 ms (the exact count
            // of accepted connections reads /proc/net/tcp, a thousand lines here, and polled that
            // often it took the CPU the bridge needed on a loaded machine).
            let expected = idleDescriptors + connections.count
            #expect(try await eventually(timeout: .seconds(5)) { Self.descriptors(of: bridge.pid) >= expected }, "batch \(batch) accepted")
        }
        let openTime = ContinuousClock.now - opened

        let client = CurlClient()
        let posted = ContinuousClock.now
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("F", 1)) == 202)
        let answerTime = ContinuousClock.now - posted
        #expect(answerTime < .seconds(3), "Graph gives the bridge 3 s; this took \(answerTime)")
        let floodedDescriptors = Self.descriptors(of: bridge.pid)

        var unclosed = 0
        for connection in connections where await !connection.waitForClose(timeout: .seconds(20)).closed {
            unclosed += 1
        }
        let closedAfter = ContinuousClock.now - opened
        #expect(unclosed == 0, "\(unclosed) connections were left open")
        #expect(try await eventually { jsonLines(directory.file("audit.jsonl")).count == 1 })
        let afterDescriptors = Self.descriptors(of: bridge.pid)
        #expect(
            afterDescriptors < idleDescriptors + 50,
            "the bridge's descriptors: \(idleDescriptors) idle, \(floodedDescriptors) flooded, \(afterDescriptors) after")
        print(
            "slow clients: 1100 connections opened in \(openTime); notification answered in \(answerTime); all closed \(closedAfter) after the first opened (idleTimeout 3s, requestTimeout 3s, maxConnections 2000); bridge descriptors \(idleDescriptors) idle, \(floodedDescriptors) flooded, \(afterDescriptors) after"
        )

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    @Test("beyond maxConnections a notification waits in the backlog until idle connections are closed, then it is answered")
    func overTheCap() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config(idle: "1s", request: "1s", maxConnections: 100))
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        var silent: [RawConnection] = []
        for _ in 0..<200 { silent.append(try await RawConnection.open(port: port)) }
        // What a client sees of the cap takes the bridge a moment to reach: the count is read once
        // the bridge has accepted its 100 (it never gets further while they stay open).
        #expect(try await eventually(timeout: .seconds(5)) { Self.acceptedConnections(of: bridge.pid, port: port) >= 100 })
        let accepted = Self.acceptedConnections(of: bridge.pid, port: port)
        #expect(accepted == 100, "no more than maxConnections connections accepted: \(accepted) of 200")

        let client = CurlClient()
        let posted = ContinuousClock.now
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("C", 1)) == 202)
        let answerTime = ContinuousClock.now - posted
        // Two idle periods: the first 100 are closed after 1 s, the 100 queued before the notification after another.
        #expect(answerTime >= .milliseconds(900) && answerTime < .seconds(10), "\(answerTime)")
        print("slow clients over the cap: 200 silent connections, maxConnections 100, idleTimeout 1s: notification answered after \(answerTime)")
        _ = silent

        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }
}
