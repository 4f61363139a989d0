import SinkAPI
import Foundation
import Logging
import ServiceLifecycle
import TestSupport
import Testing

@testable import ExecSink

#if canImport(Glibc)
    import Glibc
#endif

/// The service started late, stopped early, or starved of threads: deliveries still end (retryable)
/// in bounded time, shutdown is bounded, and no plugin is left behind. The starvation is simulated
/// with a ``StallableExecutor`` that only this test's service group runs on, so the tests running
/// alongside are not slowed.
@Suite("exec sink: late starts, early stops, a starved service", .machine(.processes))
struct StartStopTests {
    /// A start wait long enough that a delivery ending before it was ended by something else.
    static var patient: ExecSink.Supervision {
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .seconds(20)
        return supervision
    }

    @Test("cancelled before run() ever ran: deliveries fail retryable at once, no plugin is started, run() returns")
    func cancelledBeforeRun() async throws {
        let executor = StallableExecutor()
        executor.hold()
        let running = RunningSink.start(command: testPlugin(), timeout: .seconds(30), supervision: Self.patient, executor: executor)
        let sink = running.sink
        let early = event("ok")
        let delivery = Task { await sink.timedSend(early) }
        #expect(await running.log.deliveriesRegistered(id: early.id))
        running.task.cancel()
        executor.release()

        let result = await finished(running.task, within: .seconds(10))
        #expect(result != nil, "the service group did not end")
        let (outcome, elapsed) = await delivery.value
        // The message is the proof that the stop ended it (not the 20 s start wait); the time only catches a hang.
        #expect(outcome == .retry("the exec sink is stopping"))
        #expect(elapsed < .seconds(15))
        let (late, lateElapsed) = await sink.timedSend(event("ok"))
        #expect(late == .retry("the exec sink is stopping"))
        #expect(lateElapsed < .seconds(5))
        // run() went through to its end: nothing of the sink is left running (or spinning).
        #expect(running.log.entries.contains { $0.message == "exec sink stopped" })
        #expect(running.log.startedPIDs.isEmpty)
        #expect(sink.supervisor.waiterCount == 0)
    }

    @Test("a graceful shutdown requested before run() ever ran: deliveries end at once (retryable, or taken by a plugin started just before), run() returns, no plugin is left")
    func shutDownBeforeRun() async throws {
        let executor = StallableExecutor()
        executor.hold()
        let running = RunningSink.start(command: testPlugin(), timeout: .seconds(30), supervision: Self.patient, executor: executor)
        let sink = running.sink
        let early = event("ok")
        let delivery = Task { await sink.timedSend(early) }
        #expect(await running.log.deliveriesRegistered(id: early.id))
        await running.group.triggerGracefulShutdown()
        executor.release()

        let result = await finished(running.task, within: .seconds(10))
        #expect(result != nil, "the service group did not end")
        // The group starts its services before it passes the shutdown on: the sink may have started
        // its plugin, which was then stopped at once. The event was written to it and answered
        // (ok, seen once in CI) or the stop ended the wait (retryable); never the not-started error.
        let (outcome, elapsed) = await delivery.value
        #expect(outcome == .ok || (outcome.isRetry && !outcome.message.contains("has not been started")), "\(outcome)")
        #expect(elapsed < .seconds(15))  // not the 20 s start wait
        #expect(await sink.send(event("ok")) == .retry("the exec sink is stopping"))
        #expect(running.log.entries.contains { $0.message == "exec sink stopped" })
        #expect(running.log.startedPIDs.count <= 1)
        #expect(sink.supervisor.waiterCount == 0)
        expectAllStopped(running.log)
    }

    @Test("run() starts only after the service was starved: early deliveries fail retryable, later ones succeed, no plugin is left")
    func lateStart() async throws {
        let executor = StallableExecutor()
        executor.hold()
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .milliseconds(300)
        supervision.stopGrace = .seconds(5)  // python exits at end of input; on a loaded machine it may take a while
        let running = RunningSink.start(command: testPlugin(), supervision: supervision, executor: executor)
        let sink = running.sink
        let starvedSince = ContinuousClock.now

        let early = await withTaskGroup(of: (Outcome, Duration).self, returning: [(Outcome, Duration)].self) { group in
            for _ in 0..<3 { group.addTask { await sink.timedSend(event("ok")) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for (outcome, elapsed) in early {
            // The message is the proof (the start wait, not the 10 s timeout); the time only catches a hang.
            #expect(outcome == .retry("the plugin has not been started (the exec sink's service is not running)"))
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(20), "\(elapsed)")
        }
        #expect(sink.supervisor.waiterCount == 0)
        #expect(running.log.startedPIDs.isEmpty)
        // Starved for 3 s in all, well past the start wait.
        try await Task.sleep(until: starvedSince + .seconds(3))
        executor.release()

        #expect(await running.log.firstStartAttempt()?.message == "exec plugin started")
        #expect(await sink.send(event("ok")) == .ok)
        #expect(await sink.send(event("retry later")) == .retry("the plugin asked to retry: later"))
        #expect(await running.shutDown(within: .seconds(15)) != nil)
        #expect(running.log.startedPIDs.count == 1)
        #expect(running.log.entries.contains { $0.message == "exec plugin stopped: it exited with status 0" })
    }

    @Test("a graceful shutdown while a restart waits out its backoff ends at once: no restart, the waiting delivery fails retryable")
    func shutdownDuringBackoff() async throws {
        var supervision = Self.patient
        supervision.initialRestartDelay = .seconds(60)
        supervision.maximumRestartDelay = .seconds(60)
        let running = RunningSink.start(command: testPlugin(), timeout: .seconds(30), supervision: supervision)
        let sink = running.sink
        #expect(await running.log.firstStartAttempt()?.message == "exec plugin started")
        #expect(await sink.send(event("crash 3")) == .retry("the plugin exited with status 3 before answering"))
        let restart = await running.log.first { $0.message.hasPrefix("exec plugin exited with status 3; restarting in") }
        #expect(restart?.metadata["bridge.restart_in"] == "60s")

        let waiting = event("ok")
        let delivery = Task { await sink.timedSend(waiting) }
        #expect(await running.log.deliveriesRegistered(id: waiting.id))
        #expect(await running.shutDown(within: .seconds(10)) != nil)  // not the 60 s backoff
        let (outcome, elapsed) = await delivery.value
        #expect(outcome == .retry("the exec sink is stopping"))  // not the 20 s start wait
        #expect(elapsed < .seconds(15))
        #expect(running.log.startedPIDs.count == 1)
        #expect(sink.supervisor.waiterCount == 0)
    }

    @Test("a plugin that ignores stdin closing and SIGTERM is killed after 2 × stopGrace; its unanswered event fails retryable")
    func boundedShutdown() async throws {
        var supervision = ExecSink.Supervision.fast
        supervision.stopGrace = .milliseconds(500)
        let running = RunningSink.start(command: testPlugin("--ignore-eof", "--ignore-term"), timeout: .seconds(30), supervision: supervision)
        let sink = running.sink
        #expect(await running.log.first { $0.message == "test-plugin ready" } != nil)
        let held = event("hang")
        let delivery = Task { await sink.timedSend(held) }
        #expect(await running.log.deliveriesRegistered(id: held.id))
        let took = await running.shutDown(within: .seconds(15))
        // Both graces were waited out, then SIGKILL ended it: not the 30 s timeout. (The upper bound has
        // room for a loaded machine; the log lines and the outcome prove the order.)
        let bound = supervision.stopGrace * 2 + PluginSupervisor.killWait + .seconds(8)
        #expect(took.map { $0 >= .milliseconds(950) && $0 < bound } == true, "\(String(describing: took))")
        #expect(running.log.entries.contains { $0.message.hasSuffix("sending SIGKILL") })
        let (outcome, elapsed) = await delivery.value
        #expect(outcome == .retry("the plugin was killed by signal 9 (SIGKILL) before answering"))
        #expect(elapsed < .seconds(15))
    }

    @Test("the test helper waits for a starved service to start before its body sends anything")
    func helperWaitsForStart() async throws {
        let executor = StallableExecutor()
        executor.hold()
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .milliseconds(300)
        // The starvation outlasts the start wait: a delivery sent as soon as the group is started fails.
        let starvation = Task {
            try? await Task.sleep(for: .seconds(1))
            executor.release()
        }
        try await withExecSink(command: testPlugin(), supervision: supervision, executor: executor) { sink, log in
            #expect(!log.startedPIDs.isEmpty)
            #expect(await sink.send(event("ok")) == .ok)
        }
        await starvation.value
    }
}

/// The helpers the exec sink tests wait with: every wait ends, however the sink behaves.
@Suite("exec sink: the tests' own waits", .machine(.processes))
struct TestWaitTests {
    @Test("a delivery that ended before the test looked for it does not leave the test waiting (it used to spin on Task.yield)")
    func deliveryEndedFirst() async throws {
        let executor = StallableExecutor()
        executor.hold()
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .milliseconds(200)
        let running = RunningSink.start(command: testPlugin(), supervision: supervision, executor: executor)
        let gone = event("hang")
        #expect(await running.sink.send(gone) == .retry("the plugin has not been started (the exec sink's service is not running)"))
        #expect(running.sink.supervisor.waiterCount == 0)  // what `while waiterCount < 1 { await Task.yield() }` waited for forever
        let wait = Task { await running.log.deliveriesRegistered(id: gone.id) }
        #expect(await finished(wait, within: .seconds(5)) == .success(true))
        executor.release()
        #expect(await running.shutDown() != nil)
    }

    @Test("waiting for a log line ends as soon as the waiting task is cancelled, not at its timeout")
    func logWaitCancelled() async throws {
        let log = LogCapture()
        let waiter = Task { await log.wait(timeout: .seconds(30)) { $0.message == "a line that never comes" }.count }
        let started = ContinuousClock.now
        waiter.cancel()
        #expect(await finished(waiter, within: .seconds(10)) == .success(0))
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
