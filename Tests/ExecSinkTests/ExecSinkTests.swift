import SinkAPI
import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import ExecSink
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

@Suite("exec sink: a real plugin process", .machine(.processes))
struct ExecSinkTests {
    @Test("ok, retry and drop answers become success, a retryable error and a permanent one")
    func statuses() async throws {
        try await withExecSink(command: testPlugin()) { sink, log in
            #expect(await sink.send(event("ok")) == .ok)
            let retry = await sink.send(event("retry the mailbox is busy"))
            #expect(retry.isRetry && retry.message.contains("the mailbox is busy"))
            let drop = await sink.send(event("drop no such channel"))
            #expect(drop == .drop("the plugin dropped the event: no such channel"))
        }
    }

    @Test("the plugin's stderr reaches the log line by line, with the sink's name")
    func stderrToLog() async throws {
        try await withExecSink(command: testPlugin()) { sink, log in
            let ready = await log.first { $0.message == "test-plugin ready" }
            #expect(ready?.metadata["bridge.sink"] == "plugin")
            #expect(ready?.metadata["bridge.stream"] == "stderr")
            #expect(ready?.metadata["bridge.pid"] == log.startedPIDs.first.map { "\($0)" })
            #expect(await sink.send(event("stderr hello from the plugin")) == .ok)
            #expect(await log.first { $0.message == "hello from the plugin" } != nil)
            // Terminal escapes are shown, not sent raw to the log.
            #expect(await sink.send(event("stderr in \u{1B}[31mred")) == .ok)
            #expect(await log.first { $0.message == "in \\x1B[31mred" } != nil)
        }
    }

    @Test("several events in flight, answered out of order, each get their own answer by id")
    func outOfOrder() async throws {
        try await withExecSink(command: testPlugin()) { sink, _ in
            async let first = sink.send(event("hold ok"))
            async let second = sink.send(event("hold retry second was busy"))
            async let third = sink.send(event("hold drop third is bad"))
            // The plugin answers the held three newest first once it holds all of them.
            let release = await sink.send(event("release 3"))
            let outcomes = await [first, second, third]
            #expect(release == .ok)
            #expect(outcomes[0] == .ok)
            #expect(outcomes[1] == .retry("the plugin asked to retry: second was busy"))
            #expect(outcomes[2] == .drop("the plugin dropped the event: third is bad"))
        }
    }

    @Test("a thousand events, eight in flight at a time, all answered and each written once")
    func many() async throws {
        try await withExecSink(command: testPlugin()) { sink, _ in
            let events = (0..<1000).map { _ in event("ok") }
            let outcomes = await withTaskGroup(of: Outcome.self, returning: [Outcome].self) { group in
                var outcomes: [Outcome] = []
                for (index, event) in events.enumerated() {
                    if index >= 8, let outcome = await group.next() { outcomes.append(outcome) }
                    group.addTask { await sink.send(event) }
                }
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            #expect(outcomes.count == 1000 && outcomes.allSatisfy { $0 == .ok })
            #expect(await sink.send(event("report count:\(events[500].id)")) == .retry("the plugin asked to retry: 1"))
            #expect(sink.supervisor.waiterCount == 0)
        }
    }

    @Test("a plugin that exits is restarted: the event it took fails retryable at once, later ones succeed")
    func crashAndRestart() async throws {
        try await withExecSink(command: testPlugin("--exit-after", "2")) { sink, log in
            #expect(await sink.send(event("ok")) == .ok)
            let (lost, elapsed) = await sink.timedSend(event("ok"))  // the plugin exits on reading it
            #expect(lost == .retry("the plugin exited with status 3 before answering"))
            #expect(elapsed < .seconds(5))  // not the 10 s timeout
            let restart = await log.first { $0.message.hasPrefix("exec plugin exited with status 3; restarting in") }
            #expect(restart?.metadata["bridge.restart_in"] == "50ms")
            // The restart is awaited: a service starved of threads past startWait restarts late (its
            // deliveries meanwhile fail retryable; `backoff` tests that).
            #expect(await log.wait(for: 2) { $0.message == "exec plugin started" }.count == 2)
            #expect(await sink.send(event("ok")) == .ok)
            let pids = log.startedPIDs
            try #require(pids.count == 2)
            #expect(pids[0] != pids[1])
            #expect(!isAlive(pids[0]))
        }
    }

    @Test("an event with no answer is retryable after the timeout; other deliveries are not held up")
    func hang() async throws {
        try await withExecSink(command: testPlugin(), timeout: .seconds(2)) { sink, log in
            #expect(await log.first { $0.message == "test-plugin ready" } != nil)  // timings from here
            async let hung = sink.timedSend(event("hang"))
            let (quick, quickTime) = await sink.timedSend(event("ok"))
            #expect(quick == .ok)
            #expect(quickTime < .milliseconds(1800))
            let (outcome, elapsed) = await hung
            #expect(outcome == .retry("no answer from the plugin within 2s"))
            #expect(elapsed >= .milliseconds(1950) && elapsed < .seconds(5))
            // The plugin is still fine.
            #expect(await sink.send(event("ok")) == .ok)
        }
    }

    @Test("a plugin that stops reading stdin holds no delivery past its own timeout")
    func fullStdinPipe() async throws {
        let directory = TemporaryDirectory()
        let plugin = directory.script("deaf.sh", "#!/bin/sh\necho deaf plugin up >&2\nwhile :; do sleep 1; done\n")
        try await withExecSink(command: [plugin], timeout: .milliseconds(800)) { sink, log in
            #expect(await log.first { $0.message == "deaf plugin up" } != nil)
            // 1 MB fills the 64 KiB pipe: the writer stalls on it, the others queue behind.
            async let big = sink.timedSend(event(String(repeating: "x", count: 1 << 20)))
            async let small = sink.timedSend(event("ok"))
            let results = await [big, small]
            // The big line can never fit the pipe. The small one either queued behind it or (if it
            // went first) sits unread in the pipe: both end at their own timeout.
            #expect(results[0].0 == .retry("the plugin did not read the event from its stdin within 800ms (is it reading stdin?)"))
            #expect(results[1].0.isRetry && results[1].0.message.contains("within 800ms"), "\(results[1].0)")
            for (_, elapsed) in results {
                #expect(elapsed >= .milliseconds(750) && elapsed < .seconds(3))
            }
        }
    }

    @Test("a stderr flood is cut to bounded lines at a bounded rate; deliveries keep working")
    func stderrFlood() async throws {
        var supervision = ExecSink.Supervision.fast
        supervision.stderrLineLimit = 1000
        supervision.stderrLinesPerSecond = 20
        supervision.stderrBurst = 10
        let started = ContinuousClock.now
        let log = try await withExecSink(command: testPlugin(), supervision: supervision) { sink, log in
            #expect(await sink.send(event("stderr " + String(repeating: "z", count: 3000))) == .ok)
            let cut = await log.first { $0.metadata["bridge.truncated"] == "true" }
            #expect(cut?.message.hasPrefix(String(repeating: "z", count: 1000)) == true)
            #expect(cut?.message.hasSuffix("…[truncated]") == true)
            #expect((cut?.message.utf8.count ?? .max) <= 1000 + 20)
            // 20 000 lines of 500 bytes and a 1 MiB line: ~11 MB through the pipe.
            #expect(await sink.send(event("flood 20000 500")) == .ok)
            #expect(await sink.send(event("ok")) == .ok)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + 1
        let lines = log.stderrLines
        #expect(Double(lines.count) <= 10 + 20 * seconds + 2, "stderr lines logged: \(lines.count) in \(elapsed)")
        #expect(lines.allSatisfy { $0.message.utf8.count <= 1000 + 20 })
        // Every line is either logged or counted in a "lines dropped" warning.
        let dropped = log.entries.compactMap { $0.metadata["bridge.dropped"].flatMap { Int($0) } }
        #expect(!dropped.isEmpty)
        #expect(dropped.reduce(0, +) + lines.count >= 20_000 + 3)
    }

    @Test("graceful shutdown closes stdin and the plugin exits by itself: no signal needed")
    func shutdownByEOF() async throws {
        // A plugin that exits at end of input ends the wait at once; the long grace is for python on a loaded machine.
        var supervision = ExecSink.Supervision.fast
        supervision.stopGrace = .seconds(10)
        let log = try await withExecSink(command: testPlugin(), supervision: supervision, shutdownLimit: .seconds(25)) { sink, log in
            #expect(await sink.send(event("ok")) == .ok)
        }
        let pid = try #require(log.startedPIDs.first)
        #expect(!isAlive(pid))
        #expect(!log.entries.contains { $0.message.contains("SIGTERM") })
        #expect(log.entries.contains { $0.message == "exec plugin stopped: it exited with status 0" })
    }

    @Test("a plugin that ignores stdin closing gets SIGTERM (not blocked or ignored in the child)")
    func shutdownBySIGTERM() async throws {
        var supervision = ExecSink.Supervision.fast
        supervision.stopGrace = .seconds(2)  // time for python to run its handler on a loaded machine
        let log = try await withExecSink(command: testPlugin("--ignore-eof", "--trap-term"), supervision: supervision) { sink, _ in
            #expect(await sink.send(event("ok")) == .ok)
        }
        #expect(log.entries.contains { $0.message.hasSuffix("sending SIGTERM") })
        #expect(log.entries.contains { $0.message == "got SIGTERM" })
        #expect(!log.entries.contains { $0.message.contains("SIGKILL") })
    }

    @Test("a plugin that ignores SIGTERM is killed")
    func shutdownBySIGKILL() async throws {
        let log = try await withExecSink(command: testPlugin("--ignore-eof", "--ignore-term")) { sink, _ in
            #expect(await sink.send(event("ok")) == .ok)
        }
        #expect(log.entries.contains { $0.message.hasSuffix("sending SIGKILL") })
        let pid = try #require(log.startedPIDs.first)
        #expect(!isAlive(pid))
    }

    @Test("cancelling the service (not a graceful shutdown) stops the plugin too")
    func cancellation() async throws {
        let log = LogCapture()
        let sink = ExecSink(
            name: "plugin", configuration: .init(command: testPlugin()),
            context: SinkContext(logger: log.logger()), supervision: .fast)
        let running = Task { try await sink.run() }
        #expect(await log.first { $0.message == "test-plugin ready" } != nil)
        running.cancel()
        let result = await finished(running, within: .seconds(10))
        #expect(result != nil, "run() did not return after its cancellation")
        let pid = try #require(log.startedPIDs.first)
        #expect(!isAlive(pid))
        #expect(await sink.send(event("ok")) == .retry("the exec sink is stopping"))
    }

    @Test("the child gets the configured environment and folder, default signals, and no inherited descriptors")
    func childSetup() async throws {
        let directory = TemporaryDirectory()
        // A descriptor without close-on-exec, open while the plugin starts, must not reach it.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        // Dispositions the bridge may have (swift-service-lifecycle ignores the signals it handles).
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        signal(SIGPIPE, SIG_IGN)
        let shell = directory.script(
            "signals.sh",
            """
            #!/bin/sh
            while IFS= read -r line; do
              id=${line#'{"id":"'}; id=${id%%'"'*}
              while read -r key value; do
                case $key in SigBlk:) blocked=$value ;; SigIgn:) ignored=$value ;; esac
              done < /proc/$$/status
              printf '{"id":"%s","status":"retry","error":"blocked=%s ignored=%s"}\\n' "$id" "$blocked" "$ignored"
            done
            """)
        try await withExecSink(command: [shell]) { sink, _ in
            let outcome = await sink.send(event("x"))
            let fields = outcome.message.split(separator: " ").suffix(2).map { UInt64($0.split(separator: "=").last ?? "", radix: 16) }
            // Nothing blocked; none of the standard signals 1-31 ignored (glibc's posix_spawn sets
            // its own internal real-time signals 32 and 33 to ignored; the child's libc resets them).
            #expect(fields.count == 2 && fields[0] == 0, "\(outcome)")
            #expect(fields.count == 2 && fields[1].map { $0 & 0x7fff_ffff } == 0, "\(outcome)")
        }
        try await withExecSink(
            command: testPlugin(), environment: ["EXEC_TEST_GREETING": "hello there"], workingDirectory: directory.path
        ) { sink, _ in
            #expect(await sink.send(event("report cwd")) == .retry("the plugin asked to retry: \(directory.path)"))
            #expect(await sink.send(event("report env:EXEC_TEST_GREETING")) == .retry("the plugin asked to retry: hello there"))
            let home = ProcessInfo.processInfo.environment["HOME"] ?? "<unset>"
            #expect(await sink.send(event("report env:HOME")) == .retry("the plugin asked to retry: \(home)"))
            // 3 is the descriptor os.listdir itself opens.
            #expect(await sink.send(event("report fds")) == .retry("the plugin asked to retry: 0,1,2,3"))
        }
    }

    @Test("a plugin gets PATH, HOME, LANG, TZ and its environment: only; the bridge's secrets only with inheritEnvironment")
    func minimalEnvironment() async throws {
        let directory = TemporaryDirectory()
        // The bridge's environment as `run` has it, with a secret in it. Passed in, not set with
        // `setenv`: that races the threads of parallel tests that spawn processes (a crash in
        // Foundation's `Process.run` copying the environment).
        var supervision = ExecSink.Supervision.fast
        let parent = ProcessInfo.processInfo.environment.merging(["GRAPH_CLIENT_SECRET": "s3cret-from-the-bridge", "EXEC_TEST_BRIDGE_ONLY": "bridge"]) { $1 }
        supervision.parentEnvironment = { parent }
        let plugin = directory.script(
            "env.sh",
            """
            #!/bin/sh
            while IFS= read -r line; do
              id=${line#'{"id":"'}; id=${id%%'"'*}
              names=$(env | sed 's/=.*//' | sort | tr '\\n' ' ')
              printf '{"id":"%s","status":"retry","error":"%s| %s"}\\n' "$id" "$names" "${GRAPH_CLIENT_SECRET-unset}"
            done
            """)
        /// The plugin's variable names and its GRAPH_CLIENT_SECRET.
        func environment(of sink: ExecSink) async -> (names: Set<String>, secret: String) {
            let message = await sink.send(event("x")).message.replacingOccurrences(of: "the plugin asked to retry: ", with: "")
            let parts = message.components(separatedBy: "| ")
            return (Set(parts[0].split(separator: " ").map(String.init)), parts.count > 1 ? parts[1] : "?")
        }
        try await withExecSink(command: [plugin], environment: ["PLUGIN_SETTING": "on"], supervision: supervision) { sink, _ in
            let (names, secret) = await environment(of: sink)
            #expect(secret == "unset")
            #expect(!names.contains("GRAPH_CLIENT_SECRET") && !names.contains("EXEC_TEST_BRIDGE_ONLY"), "\(names)")
            #expect(names.contains("PLUGIN_SETTING") && names.contains("PATH"), "\(names)")
            // What the shell adds itself (PWD, SHLVL, _) aside, nothing beyond the minimal set and environment:.
            let expected = Set(ExecSink.Configuration.minimalVariables + ["PLUGIN_SETTING", "PWD", "OLDPWD", "SHLVL", "_"])
            #expect(names.isSubset(of: expected), "\(names.subtracting(expected))")
        }
        try await withExecSink(command: [plugin], environment: ["PLUGIN_SETTING": "on"], inheritEnvironment: true, supervision: supervision) { sink, _ in
            let (names, secret) = await environment(of: sink)
            #expect(secret == "s3cret-from-the-bridge")
            #expect(names.isSuperset(of: ["GRAPH_CLIENT_SECRET", "EXEC_TEST_BRIDGE_ONLY", "PLUGIN_SETTING", "PATH"]), "\(names)")
        }
    }

    @Test("the same event in flight twice is written once and both deliveries get its answer")
    func duplicateInFlight() async throws {
        try await withExecSink(command: testPlugin()) { sink, log in
            let twice = event("hold ok")
            async let first = sink.send(twice)
            async let second = sink.send(twice)
            // Awaited, not polled: a delivery that ended early cannot leave the test spinning.
            #expect(await log.deliveriesRegistered(2, id: twice.id))
            #expect(sink.supervisor.waiterCount == 2)
            #expect(await sink.send(event("release 1")) == .ok)
            #expect(await [first, second] == [.ok, .ok])
            #expect(await sink.send(event("report count:\(twice.id)")) == .retry("the plugin asked to retry: 1"))
            // Delivered again later (a retry, not in flight): written again, with the same id.
            async let again = sink.send(twice)
            #expect(await log.deliveriesRegistered(3, id: twice.id))
            #expect(await sink.send(event("release 1")) == .ok)
            #expect(await again == .ok)
            #expect(await sink.send(event("report count:\(twice.id)")) == .retry("the plugin asked to retry: 2"))
        }
    }

    @Test("lines that are not answers, and unknown ids, are logged and ignored; an unknown status is retried")
    func badAnswers() async throws {
        try await withExecSink(command: testPlugin()) { sink, log in
            #expect(await sink.send(event("garbage")) == .ok)
            #expect(await log.first { $0.message.contains("is not an answer") } != nil)
            #expect(
                await log.first { $0.message.contains("an id that is not waiting") && $0.metadata["bridge.line"]?.contains("no-such-event") == true }
                    != nil)
            let (outcome, elapsed) = await sink.timedSend(event("badstatus"))
            #expect(outcome == .retry("the plugin answered status maybe, which is not ok, retry or drop"))
            #expect(elapsed < .seconds(5))
            #expect(await sink.send(event("ok")) == .ok)
        }
    }

    @Test("a plugin that keeps exiting is restarted with doubling delays; deliveries meanwhile fail fast")
    func backoff() async throws {
        let directory = TemporaryDirectory()
        let plugin = directory.script("quits.sh", "#!/bin/sh\nexit 7\n")
        var supervision = ExecSink.Supervision.fast
        supervision.initialRestartDelay = .milliseconds(100)
        supervision.startWait = .milliseconds(50)
        try await withExecSink(command: [plugin], supervision: supervision) { sink, log in
            let restarts = await log.wait(for: 4) { $0.message.hasPrefix("exec plugin exited with status 7") }
            #expect(restarts.map { $0.metadata["bridge.restart_in"] } == ["100ms", "200ms", "400ms", "400ms"])
            let (outcome, elapsed) = await sink.timedSend(event("ok"))
            #expect(outcome.isRetry && outcome.message.contains("the plugin is not running"), "\(outcome)")
            #expect(elapsed < .seconds(2))
        }
    }

    @Test("a program that cannot be started is retried with backoff and logged")
    func cannotStart() async throws {
        let directory = TemporaryDirectory()
        let plugin = directory.script("gone.sh", "#!/bin/sh\n")
        try FileManager.default.removeItem(atPath: plugin)
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .milliseconds(300)
        try await withExecSink(command: [plugin], supervision: supervision) { sink, log in
            let failures = await log.wait(for: 2) { $0.message.hasPrefix("exec plugin could not be started") }
            #expect(failures.count == 2)
            #expect(failures.first?.metadata["error"]?.contains("No such file or directory") == true)
            let outcome = await sink.send(event("ok"))
            #expect(outcome.isRetry && outcome.message.contains("could not be started"), "\(outcome)")
        }
    }

    @Test("a delivery that is cancelled ends at once and leaves nothing waiting")
    func cancelledDelivery() async throws {
        try await withExecSink(command: testPlugin()) { sink, log in
            let hang = event("hang")
            let delivery = Task { await sink.send(hang) }
            #expect(await log.deliveriesRegistered(id: hang.id))
            #expect(sink.supervisor.waiterCount == 1)
            delivery.cancel()
            #expect(await delivery.value == .other("CancellationError()"))
            #expect(sink.supervisor.waiterCount == 0)
        }
    }

    @Test("deliveries wait briefly for the first start instead of failing")
    func waitsForStart() async throws {
        let log = LogCapture()
        var supervision = ExecSink.Supervision.fast
        supervision.startWait = .seconds(20)  // the service may get a thread late on a loaded machine
        let sink = ExecSink(
            name: "plugin", configuration: .init(command: testPlugin()),
            context: SinkContext(logger: log.logger()), supervision: supervision)
        let first = event("ok")
        async let early = sink.send(first)  // before run(): waits up to startWait
        #expect(await log.deliveriesRegistered(id: first.id))
        #expect(log.entries.contains { $0.message == "exec event waits for the plugin to start" && $0.metadata["bridge.event"] == first.id })
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: sink)], logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await group.run() }
        #expect(await early == .ok)
        await group.triggerGracefulShutdown()
        let result = await finished(running, within: .seconds(10))
        #expect(result != nil, "the service group did not stop")
        expectAllStopped(log)
    }
}
