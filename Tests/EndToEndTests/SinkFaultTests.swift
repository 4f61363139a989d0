import CurlKit
import Foundation
import TestSupport
import Testing

/// Every way a sink can fail, at once, beside a healthy one, in the real binary: each sink fault
/// is covered in isolation by its sink's suite; this shows that together they hold up nothing
/// else, lose nothing, and do not make the bridge slow or fat.
@Suite("sink faults end to end", .machine(.exclusive))
struct SinkFaultTests {
    /// What the bridge may hold resident with 200 events queued for five failing sinks (debug
    /// build; it idles near 50 MB). Memory that grew with retries or stderr floods would pass it.
    static let rssLimitMB = 150

    /// An exec plugin that takes one event, notes it, floods stderr (20 000 short lines and one of
    /// 1 MiB) and exits 1 without answering: a crash on every event.
    static let crashingPlugin = """
        #!/bin/sh
        IFS= read -r event || exit 0
        printf '%s\\n' "$event" >> plugin-seen.jsonl
        yes "crashing plugin: noise noise noise noise noise noise noise noise" | head -n 20000 >&2
        head -c 1048576 /dev/zero | tr '\\0' x >&2
        exit 1

        """

    static func notification(_ n: Int) -> [UInt8] { EndToEndTests.notification("sinkfault", n) }

    /// The N of every `sinkfault-N` resource in these texts, repeats kept.
    static func numbers(_ texts: [String]) -> [Int] { EndToEndTests.numbers("sinkfault", in: texts) }

    /// `VmHWM` (peak resident set) of a process, in MB.
    static func peakRSS(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kilobytes / 1024
    }

    /// The hanging webhook and the crashing plugin get 64 lanes so that all 200 events are tried
    /// within seconds and the retries begin. The slow receiver takes 250 ms per event over its 8
    /// lanes: 200 events in about 7 s (at 1 s each it would be 25 s).
    static func config(hanging: Int, failing: Int, slow: Int, smtp: Int) -> String {
        EndToEndTests.config().replacingOccurrences(
            of: "  audit: { type: file, path: audit.jsonl }",
            with: """
                  audit: { type: file, path: audit.jsonl }
                  hanging:
                    type: webhook
                    url: http://127.0.0.1:\(hanging)/hook
                    timeout: 2s
                    concurrency: 64
                    retry: &failing { initialBackoff: 500ms, maxBackoff: 2s }
                  resetting: { type: webhook, url: "http://127.0.0.1:\(failing)/reset", timeout: 2s, retry: *failing }
                  garbage: { type: webhook, url: "http://127.0.0.1:\(failing)/garbage", timeout: 2s, retry: *failing }
                  slow: { type: webhook, url: "http://127.0.0.1:\(slow)/slow/250", timeout: 2s, concurrency: 8 }
                  mail:
                    type: smtp
                    url: smtp://127.0.0.1:\(smtp)
                    tls: none
                    from: bridge@example.test
                    to: [ops@example.test]
                    timeout: 2s
                    concurrency: 4
                    retry: *failing
                  crashing: { type: exec, command: [./crashing-plugin.sh], timeout: 2s, concurrency: 64, retry: *failing }
                """
        )
        .replacingOccurrences(of: "to: [audit]", with: "to: [audit, hanging, resetting, garbage, slow, mail, crashing]")
    }

    @Test("a hanging, a resetting, a garbage-answering and a slow webhook, a dropping SMTP server and a crashing plugin hold up nothing")
    func everythingFailsAtOnce() async throws {
        // Accepts connections and never writes a byte: an HTTP server that hangs (aiosmtpd's --silent).
        try await withSMTPServer(["--silent"]) { hanging in
            try await withSMTPServer(["--drop-in-data"]) { smtp in
                try await withHTTPReceiver { failing in
                    try await withHTTPReceiver { slow in
                        try await run(hanging: hanging.port, failing: failing, slow: slow, smtp: smtp)
                    }
                }
            }
        }
    }

    @Test("a webhook that hangs does not hold up another webhook on the same host and port")
    func sameHost() async throws {
        try await withHTTPReceiver { receiver in
            let directory = TemporaryDirectory()
            // 12 lanes hanging 30 s each on one host: more than libcurl's default of 8 per host.
            directory.write("bridge.yaml", EndToEndTests.config().replacingOccurrences(
                of: "  audit: { type: file, path: audit.jsonl }",
                with: """
                      audit: { type: file, path: audit.jsonl }
                      stuck: { type: webhook, url: "\(receiver.url("/slow/30000"))", timeout: 30s, concurrency: 12 }
                      healthy: { type: webhook, url: "\(receiver.url("/hook"))", timeout: 5s, concurrency: 2 }
                    """
            ).replacingOccurrences(of: "to: [audit]", with: "to: [audit, stuck, healthy]"))
            let bridge = try BridgeProcess(
                ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
            let port = try await bridge.port()
            let client = CurlClient()
            for n in 0..<20 {
                #expect(try await EndToEndTests.post(client, port: port, body: Self.notification(n)) == 202)
            }
            // Every event reaches the healthy webhook while the stuck one holds 12 connections.
            let healthy = try await eventually(timeout: .seconds(10)) {
                Set(Self.numbers(try receiver.recordedRequests().filter { $0.path == "/hook" }.map { String(decoding: $0.body, as: UTF8.self) })).count == 20
            }
            #expect(healthy, "the healthy webhook got \(Set(Self.numbers((try? receiver.recordedRequests().filter { $0.path == "/hook" }.map { String(decoding: $0.body, as: UTF8.self) }) ?? [])).count) of 20")
            #expect(try receiver.recordedRequests().filter { $0.path == "/slow/30000" }.count >= 12, "the stuck webhook holds its lanes")
            await client.shutdown()
            bridge.signal(SIGTERM)
            #expect(await bridge.waitForExit() == 0)
        }
    }

    private func run(hanging: Int, failing: HTTPReceiver, slow: HTTPReceiver, smtp: SMTPServer) async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config(hanging: hanging, failing: failing.port, slow: slow.port, smtp: smtp.port))
        directory.write("crashing-plugin.sh", Self.crashingPlugin)
        #expect(chmod(directory.file("crashing-plugin.sh"), 0o755) == 0)
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        let audit = directory.file("audit.jsonl")
        var latencies: [Duration] = []
        func post(_ range: Range<Int>) async throws {
            for n in range {
                let started = ContinuousClock.now
                #expect(try await EndToEndTests.post(client, port: port, body: Self.notification(n)) == 202)
                latencies.append(ContinuousClock.now - started)
            }
        }
        func failedAgain(_ sink: String) -> Bool {
            bridge.hasLog {
                $0.contains("delivery failed; will retry") && $0.contains(#""bridge.sink":"\#(sink)""#) && $0.contains(#""bridge.attempt":"2""#)
            }
        }

        // Half the notifications; once the failures are well under way (retries at the instant
        // failures), the other half, timed: the intake does not care how the sinks are doing.
        try await post(0..<100)
        #expect(try await eventually { failedAgain("resetting") && failedAgain("garbage") })
        let beforeStorm = latencies.count
        try await post(100..<200)
        let lastPosted = ContinuousClock.now
        let stormLatencies = latencies[beforeStorm...].sorted()
        let (median, slowest) = (stormLatencies[stormLatencies.count / 2], stormLatencies.last!)
        #expect(slowest < .seconds(1), "slowest 202 while sinks fail: \(slowest)")
        #expect(median < .milliseconds(100), "median 202 while sinks fail: \(median)")

        // The healthy sinks get everything, without waiting for the failing ones.
        let everything = Set(0..<200)
        #expect(try await eventually(timeout: .seconds(10)) { Set(Self.numbers(jsonLines(audit))) == everything })
        let fileDone = ContinuousClock.now - lastPosted
        #expect(
            try await eventually(timeout: .seconds(20)) {
                Set(Self.numbers(try slow.recordedRequests().map { String(decoding: $0.body, as: UTF8.self) })) == everything
            })
        let slowDone = ContinuousClock.now - lastPosted
        #expect(jsonLines(audit).count == 200, "each event once in the file")

        // Every failing sink tried its events and is trying them again.
        for sink in ["hanging", "resetting", "garbage", "mail", "crashing"] {
            #expect(try await eventually(timeout: .seconds(20)) { failedAgain(sink) }, "no second failed attempt for \(sink)")
        }
        let attempts = Dictionary(grouping: try failing.recordedRequests(), by: \.path).mapValues { requests in
            Dictionary(grouping: requests) { $0.header("webhook-id") ?? "" }.values.map(\.count).max() ?? 0
        }
        #expect(attempts["/reset"] ?? 0 > 1 && attempts["/garbage"] ?? 0 > 1, "most attempts at one event: \(attempts)")
        #expect(try smtp.mailCommands().count > 200 && smtp.messages().isEmpty, "SMTP sessions: every event, some again, none accepted")
        let pluginRuns = jsonLines(directory.file("plugin-seen.jsonl")).count
        #expect(
            pluginRuns >= 2 && bridge.hasLog { $0.contains("exec plugin wrote too much on stderr") },
            "restarted \(pluginRuns) times, stderr rate-limited")

        // Nothing lost, nothing given up: every failing sink still holds all 200, the healthy ones none.
        // (The slow receiver answers 250 ms after it recorded a request: its last outcomes land then.)
        let adminPort = try await bridge.adminPort()
        var queued: [String: String] = [:]
        _ = try await eventually(timeout: .seconds(5)) {
            let status = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(adminPort)/status.json"))
            let sinks = try #require((try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])?["sinks"] as? [[String: Any]])
            queued = Dictionary(uniqueKeysWithValues: sinks.map { ($0["name"] as? String ?? "", "\($0["queued"] ?? "")/\($0["deadLetters"] ?? "")") })
            return queued["slow"] == "0/0"
        }
        #expect(
            queued == [
                "audit": "0/0", "slow": "0/0",
                "hanging": "200/0", "resetting": "200/0", "garbage": "200/0", "mail": "200/0", "crashing": "200/0",
            ])
        #expect(try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/healthz")).status == 200)
        let peak = try #require(Self.peakRSS(of: bridge.pid))
        #expect(peak < Self.rssLimitMB, "peak RSS \(peak) MB")
        print(
            "sink faults: after the last 202, file sink complete in \(fileDone), slow webhook in \(slowDone); 202 median \(median) max \(slowest) under failures, peak RSS \(peak) MB, \(pluginRuns) plugin runs, attempts \(attempts), \(try smtp.mailCommands().count) SMTP sessions"
        )

        // SIGTERM with 64 hanging transfers in flight: still out within 10 s, cleanly.
        await client.shutdown()
        let stopping = ContinuousClock.now
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        #expect(ContinuousClock.now - stopping < .seconds(10))
    }
}
