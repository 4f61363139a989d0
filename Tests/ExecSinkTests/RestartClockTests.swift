import Foundation
import SinkAPI
import TestSupport
import Testing

@testable import ExecSink

#if canImport(Glibc)
    import Glibc
#endif

/// The exec sink's waits on a clock the test moves, with real plugin processes: the restart delay
/// after each exit, what a child's uptime does to it, and a delivery's timeout. Only the waiting
/// is the test's; the children start, exit and are killed for real.
@Suite("exec sink: restarts and timeouts on an injected clock", .machine(.processes))
struct RestartClockTests {
    /// Delays of 1 s doubling up to 4 s, reset by 10 s of uptime, on `clock`.
    static func supervision(_ clock: ManualTestClock) -> ExecSink.Supervision {
        var supervision = ExecSink.Supervision.fast
        supervision.initialRestartDelay = .seconds(1)
        supervision.maximumRestartDelay = .seconds(4)
        supervision.stableUptime = .seconds(10)
        supervision.clock = clock
        return supervision
    }

    /// Returns once the sink has started `count` children; the newest one's pid.
    static func started(_ count: Int, _ log: LogCapture) async throws -> pid_t {
        let starts = await log.wait(for: count) { $0.message == "exec plugin started" }
        try #require(starts.count == count, "\(count) plugins started")
        return try #require(log.startedPIDs.last)
    }

    @Test("restart delays double up to the maximum on the clock; a child up for 9.999 s keeps the delay, one up for 10 s resets it")
    func backoffAndReset() async throws {
        let directory = TemporaryDirectory()
        let stay = directory.file("stay")
        // Exits at once with status 7, unless the `stay` file exists: then runs until its stdin closes.
        let plugin = directory.script("plugin.sh", "#!/bin/sh\nif [ -e '\(stay)' ]; then exec cat > /dev/null; fi\nexit 7\n")
        let clock = ManualTestClock(start: Date())
        let log = try await withExecSink(command: [plugin], supervision: Self.supervision(clock)) { _, log in
            // Exits at 0, 1, 3 and 7 s: each restart waits 1, 2, 4, then 4 s (the maximum).
            for (count, delay, restartAt) in [(1, 1, 1), (2, 2, 3), (3, 4, 7), (4, 4, 11)] as [(Int, Int64, Int64)] {
                try #require(await clock.sleeper { _ in true }.offset == .seconds(restartAt))
                #expect(log.startedPIDs.count == count)
                clock.advance(by: .seconds(delay) - .milliseconds(1))
                #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(restartAt)], "no restart 1 ms early")
                #expect(log.startedPIDs.count == count)
                if count == 4 { _ = FileManager.default.createFile(atPath: stay, contents: nil) }
                clock.advance(by: .milliseconds(1))
            }
            let restarts = log.entries.filter { $0.message.hasPrefix("exec plugin exited with status 7") }
            #expect(restarts.map { $0.metadata["bridge.restart_in"] } == ["1s", "2s", "4s", "4s"])

            // The fifth child stays up. Killed after 9.999 s on the clock, it was not stable: 4 s again.
            let fifth = try await Self.started(5, log)
            #expect(clock.pendingDeadlines.isEmpty, "nothing waits while the child runs")
            clock.advance(by: .milliseconds(9_999))
            kill(fifth, SIGTERM)
            try #require(await clock.sleeper { _ in true }.offset == .milliseconds(24_999))
            clock.advance(by: .seconds(4))

            // The sixth stays up for 10 s: stable, so the next delay is 1 s again.
            let sixth = try await Self.started(6, log)
            clock.advance(by: .seconds(10))
            kill(sixth, SIGTERM)
            try #require(await clock.sleeper { _ in true }.offset == .milliseconds(35_999))
            let killed = log.entries.filter { $0.message.hasPrefix("exec plugin was killed by signal 15") }
            #expect(killed.map { $0.metadata["bridge.restart_in"] } == ["4s", "1s"])
            #expect(log.startedPIDs.count == 6)
        }
        #expect(log.startedPIDs.count == 6, "stopped during that 1 s delay, without the clock moving: no seventh start")
    }

    @Test("a delivery the plugin never answers fails retryable at its timeout on the clock, not 1 ms before")
    func deliveryTimeout() async throws {
        let directory = TemporaryDirectory()
        // Reads every event, says so on stderr, and never answers.
        let plugin = directory.script("silent.sh", "#!/bin/sh\nwhile IFS= read -r line; do echo 'read an event' >&2; done\n")
        let clock = ManualTestClock(start: Date())
        try await withExecSink(command: [plugin], timeout: .seconds(30), supervision: Self.supervision(clock)) { sink, log in
            let held = event("unanswered")
            let delivery = Task { await sink.send(held) }
            // The plugin has the line: from now on only the timeout can end the delivery.
            #expect(await log.first { $0.message == "read an event" } != nil)
            // Its timeout is asleep on the clock (beside, when it came before the child counted as
            // running, the 5 s start wait, which ends harmlessly: the child has the line).
            await clock.until { $0.contains { $0.offset > .seconds(5) } }
            #expect(clock.pendingDeadlines.last?.offset == .seconds(30))
            clock.advance(by: .milliseconds(29_999))
            #expect(sink.supervisor.waiterCount == 1, "still waiting at 29.999 s")
            clock.advance(by: .milliseconds(1))
            let outcome = await delivery.value
            #expect(outcome == .retry("no answer from the plugin within 30s"), "\(log.entries.map { "\($0.message) \($0.metadata)" })")
            #expect(sink.supervisor.waiterCount == 0)
            #expect(clock.pendingDeadlines.isEmpty, "no timer outlives the delivery")
        }
    }

    @Test("a delivery the plugin answers leaves no timer asleep on the clock")
    func answeredDelivery() async throws {
        let clock = ManualTestClock(start: Date())
        try await withExecSink(command: testPlugin(), timeout: .seconds(30), supervision: Self.supervision(clock)) { sink, _ in
            #expect(await sink.send(event("ok")) == .ok)
            #expect(clock.pendingDeadlines.isEmpty)
            #expect(clock.now.offset == .zero)
        }
    }
}
