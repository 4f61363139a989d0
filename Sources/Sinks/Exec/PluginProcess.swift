import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One running plugin child and the two threads that serve it.
///
/// - The I/O thread owns the child's three pipes (non-blocking) and a wake-up pipe, and `poll`s
///   them: it writes queued event lines to stdin as the child takes them, turns stdout lines into
///   answers and stderr lines into bounded, rate-limited log lines. Nothing here ever blocks a
///   thread of Swift's cooperative pool, and a child that stops reading stdin stalls only its own
///   write queue (each delivery still ends at its own timeout).
/// - The reaper thread waits for the child to exit (`waitid` without reaping first, so the pid
///   cannot be reused while ``signal(_:)`` may still target it), then wakes the I/O thread, which
///   reads what the child wrote before it died, closes everything and reports the exit.
final class PluginProcess: Sendable {
    struct Limits: Sendable {
        var answerLineLimit: Int
        var stderrLineLimit: Int
        var stderrLinesPerSecond: Int
        var stderrBurst: Int
    }

    struct Callbacks: Sendable {
        /// An answer line from this child; returns false when no delivery waits for that id.
        var answer: @Sendable (_ generation: Int, _ answer: PluginAnswer) -> Bool
        /// The child has exited and everything it wrote was read.
        var exited: @Sendable (_ generation: Int, _ status: ExitStatus) -> Void
    }

    /// What happened to a queued line that a delivery gave up on.
    enum Withdrawal: Equatable {
        /// It was still waiting in the queue: the child never got any of it.
        case withdrawn
        /// The child has taken part of it (it cannot be taken back without breaking the stream).
        case partlyWritten
        /// The child has it all (or it is gone with a closed stdin).
        case notQueued
    }

    private struct QueuedLine {
        var id: String
        var bytes: [UInt8]
        var written = 0
        /// The I/O thread is writing it right now: it can no longer be withdrawn.
        var taken = false
    }

    private struct Shared {
        var queue: [QueuedLine] = []
        var closeStdinRequested = false
        /// The child is a zombie or gone: its pid must no longer be signalled.
        var exited = false
        var exitStatus: ExitStatus?
        /// The I/O thread has finished and closed the wake-up pipe: its descriptors may be reused.
        var finished = false
    }

    let pid: pid_t
    let generation: Int
    /// When it started, on ``elapsed``.
    let startedAt: Duration
    /// Time on the supervisor's clock: what uptime and the stderr rate limit are measured with.
    let elapsed: @Sendable () -> Duration
    private let stdinFD: Int32
    private let stdoutFD: Int32
    private let stderrFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let shared = Mutex(Shared())
    private let limits: Limits
    private let callbacks: Callbacks
    private let logger: Logger

    /// Starts the child and its threads. Throws when the program cannot be started.
    init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        generation: Int,
        limits: Limits,
        elapsed: @escaping @Sendable () -> Duration,
        logger: Logger,
        callbacks: Callbacks
    ) throws(SpawnError) {
        let wake = try Spawner.makePipe()
        Spawner.setNonBlocking(wake.read)
        Spawner.setNonBlocking(wake.write)
        let child: SpawnedChild
        do {
            child = try Spawner.spawn(
                executable: executable, arguments: arguments, environment: environment, workingDirectory: workingDirectory)
        } catch {
            close(wake.read)
            close(wake.write)
            throw error
        }
        self.pid = child.pid
        self.stdinFD = child.stdin
        self.stdoutFD = child.stdout
        self.stderrFD = child.stderr
        self.wakeRead = wake.read
        self.wakeWrite = wake.write
        self.generation = generation
        self.elapsed = elapsed
        self.startedAt = elapsed()
        self.limits = limits
        var logger = logger
        logger[metadataKey: "bridge.pid"] = "\(child.pid)"
        self.logger = logger
        self.callbacks = callbacks
        let reaper = Thread { [self] in self.reap() }
        reaper.name = "exec-reaper-\(child.pid)"
        reaper.start()
        let io = Thread { [self] in self.serve() }
        io.name = "exec-io-\(child.pid)"
        io.start()
    }

    // MARK: Called from the supervisor (any thread)

    /// Queues one event line for the child's stdin.
    func enqueue(id: String, line: [UInt8]) {
        shared.withLock { $0.queue.append(QueuedLine(id: id, bytes: line)) }
        wake()
    }

    /// Takes a line back out of the queue if the child has not started reading it.
    func withdraw(id: String) -> Withdrawal {
        shared.withLock { state in
            guard let index = state.queue.firstIndex(where: { $0.id == id }) else { return .notQueued }
            if state.queue[index].taken { return .partlyWritten }
            state.queue.remove(at: index)
            return .withdrawn
        }
    }

    /// Closes the child's stdin (its signal to finish and exit); queued lines are dropped.
    func closeStdin() {
        shared.withLock { $0.closeStdinRequested = true }
        wake()
    }

    /// Sends `signal` to the child's process group (it leads one), unless it has already exited.
    func signal(_ signal: Int32) {
        shared.withLock { state in
            guard !state.exited else { return }
            if kill(-pid, signal) != 0 { kill(pid, signal) }
        }
    }

    private func wake() {
        // Under the lock: the I/O thread closes the pipe under it too, so this never writes to a
        // descriptor number that was closed and reused. A full pipe already means "look again".
        shared.withLock { state in
            guard !state.finished else { return }
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    // MARK: Reaper thread

    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
        shared.withLock { $0.exited = true }
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
        let exitStatus = result == pid ? ExitStatus(waitStatus: status) : .unknown
        shared.withLock { $0.exitStatus = exitStatus }
        wake()
    }

    // MARK: I/O thread

    private func serve() {
        // A write to a pipe whose reader died raises SIGPIPE in the writing thread; blocked here,
        // it stays pending on this thread (which ends with the child) and write returns EPIPE.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)

        var loop = IOLoop(process: self)
        let status = loop.run()
        shared.withLock { state in
            state.finished = true
            close(wakeRead)
            close(wakeWrite)
        }
        callbacks.exited(generation, status)
    }

    /// The I/O thread's own state: descriptors still open, line splitters, log budgets.
    private struct IOLoop {
        let process: PluginProcess
        var stdin: Int32
        var stdout: Int32
        var stderr: Int32
        var answers: LineSplitter
        var stderrLines: LineSplitter
        var stderrBudget: LogBudget
        var protocolBudget = LogBudget(perSecond: 1, burst: 20)
        var lastDropReport: Duration?
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        init(process: PluginProcess) {
            self.process = process
            stdin = process.stdinFD
            stdout = process.stdoutFD
            stderr = process.stderrFD
            answers = LineSplitter(limit: process.limits.answerLineLimit)
            stderrLines = LineSplitter(limit: process.limits.stderrLineLimit)
            stderrBudget = LogBudget(perSecond: process.limits.stderrLinesPerSecond, burst: process.limits.stderrBurst)
        }

        var logger: Logger { process.logger }

        mutating func run() -> ExitStatus {
            while true {
                let (closeRequested, exitStatus, hasQueued) = process.shared.withLock {
                    ($0.closeStdinRequested, $0.exitStatus, !$0.queue.isEmpty)
                }
                if closeRequested, stdin >= 0 { closeStdin() }
                if let exitStatus {
                    // Everything the child wrote before it died is in the pipes now: read it all
                    // (bounded, in case a grandchild keeps writing), then report.
                    drain(stdout: true)
                    drain(stdout: false)
                    finishStreams()
                    if stdin >= 0 { closeStdin() }
                    return exitStatus
                }
                var fds = [pollfd(fd: process.wakeRead, events: Int16(POLLIN), revents: 0)]
                fds.append(pollfd(fd: stdout, events: Int16(POLLIN), revents: 0))
                fds.append(pollfd(fd: stderr, events: Int16(POLLIN), revents: 0))
                fds.append(pollfd(fd: hasQueued ? stdin : -1, events: Int16(POLLOUT), revents: 0))
                let ready = poll(&fds, nfds_t(fds.count), -1)
                if ready < 0 {
                    if errno == EINTR { continue }
                    logger.error("exec sink: poll failed", metadata: ["error": "\(Spawner.errorText(errno))"])
                    usleep(100_000)
                    continue
                }
                if fds[0].revents != 0 { clearWake() }
                if fds[1].revents != 0 { readOnce(stdout: true) }
                if fds[2].revents != 0 { readOnce(stdout: false) }
                if fds[3].revents != 0 { writeQueued() }
            }
        }

        mutating func clearWake() {
            var scratch = [UInt8](repeating: 0, count: 64)
            while read(process.wakeRead, &scratch, scratch.count) > 0 {}
        }

        mutating func closeStdin() {
            close(stdin)
            stdin = -1
            process.shared.withLock { $0.queue.removeAll() }
        }

        // MARK: stdin

        mutating func writeQueued() {
            while stdin >= 0 {
                guard
                    let (bytes, offset) = process.shared.withLock({ state -> ([UInt8], Int)? in
                        guard !state.queue.isEmpty else { return nil }
                        state.queue[0].taken = true
                        return (state.queue[0].bytes, state.queue[0].written)
                    })
                else { return }
                let count = bytes.withUnsafeBytes { buffer in
                    write(stdin, buffer.baseAddress! + offset, buffer.count - offset)
                }
                let failure = count < 0 ? errno : 0
                // Only this thread removes a taken head, so queue[0] is still the line just written.
                process.shared.withLock { state in
                    if count > 0 { state.queue[0].written += count }
                    if state.queue[0].written == state.queue[0].bytes.count {
                        state.queue.removeFirst()
                    } else if state.queue[0].written == 0 {
                        state.queue[0].taken = false
                    }
                }
                if count > 0 { continue }
                errno = failure
                if count < 0, errno == EINTR { continue }
                if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
                // EPIPE: the child closed its stdin (or died). Its lines get no answer; the
                // deliveries end when the child's exit is seen, or at their timeout.
                let reason = count < 0 ? Spawner.errorText(errno) : "wrote nothing"
                logger.warning("exec plugin closed its stdin; events can no longer be written to it", metadata: ["error": "\(reason)"])
                closeStdin()
            }
        }

        // MARK: stdout and stderr

        /// One read from stdout or stderr; closes the stream at its end.
        mutating func readOnce(stdout isStdout: Bool) {
            let fd = isStdout ? stdout : stderr
            guard fd >= 0 else { return }
            let count = read(fd, &buffer, buffer.count)
            if count > 0 {
                consume(count: count, stdout: isStdout)
            } else if count == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                close(fd)
                if isStdout { stdout = -1 } else { stderr = -1 }
            }
        }

        /// After the exit: read until the stream is empty, at most 4 MiB.
        mutating func drain(stdout isStdout: Bool) {
            var total = 0
            while total < 4 << 20 {
                let fd = isStdout ? stdout : stderr
                guard fd >= 0 else { return }
                let count = read(fd, &buffer, buffer.count)
                if count > 0 {
                    total += count
                    consume(count: count, stdout: isStdout)
                } else if count < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }

        mutating func finishStreams() {
            var pieces: [LineSplitter.Piece] = []
            answers.finish { pieces.append($0) }
            for piece in pieces { handleAnswer(piece) }
            pieces = []
            stderrLines.finish { pieces.append($0) }
            for piece in pieces { handleStderr(piece) }
            reportSuppressedStderr()
            for fd in [stdout, stderr] where fd >= 0 { close(fd) }
            stdout = -1
            stderr = -1
        }

        mutating func consume(count: Int, stdout isStdout: Bool) {
            var pieces: [LineSplitter.Piece] = []
            let chunk = buffer[..<count]
            if isStdout {
                answers.feed(chunk) { pieces.append($0) }
                for piece in pieces { handleAnswer(piece) }
            } else {
                stderrLines.feed(chunk) { pieces.append($0) }
                for piece in pieces { handleStderr(piece) }
            }
        }

        mutating func handleAnswer(_ piece: LineSplitter.Piece) {
            switch piece {
            case .truncated:
                protocolProblem("an answer line longer than \(process.limits.answerLineLimit) bytes was ignored", line: nil)
            case .line(let line):
                switch PluginAnswer.parse(line) {
                case .blank:
                    return
                case .invalid(let reason):
                    protocolProblem("a line on the plugin's stdout is not an answer (\(reason)); ignored", line: line)
                case .answer(let answer):
                    let known = process.callbacks.answer(process.generation, answer)
                    if case .unrecognized(let status) = answer.status {
                        protocolProblem(
                            "the plugin answered status \(status), which is not ok, retry or drop; the delivery will be retried", line: line)
                    } else if !known {
                        protocolProblem("an answer for an id that is not waiting (unknown, answered already, or timed out); ignored", line: line)
                    }
                }
            }
        }

        mutating func protocolProblem(_ message: String, line: [UInt8]?) {
            guard protocolBudget.allow(at: process.elapsed()) else { return }
            var metadata: Logger.Metadata = [:]
            if let line {
                metadata["bridge.line"] = "\(PluginAnswer.bounded(String(decoding: line.prefix(300), as: UTF8.self), to: 200))"
            }
            let suppressed = protocolBudget.takeSuppressed()
            if suppressed > 0 { metadata["bridge.suppressed"] = "\(suppressed)" }
            logger.warning("exec plugin protocol: \(message)", metadata: metadata)
        }

        mutating func handleStderr(_ piece: LineSplitter.Piece) {
            let now = process.elapsed()
            guard stderrBudget.allow(at: now) else { return }
            if lastDropReport.map({ now - $0 >= .seconds(1) }) ?? true { reportSuppressedStderr() }
            switch piece {
            case .line(let line):
                logger.info("\(Self.printable(line))", metadata: ["bridge.stream": "stderr"])
            case .truncated(let prefix):
                logger.info("\(Self.printable(prefix)) …[truncated]", metadata: ["bridge.stream": "stderr", "bridge.truncated": "true"])
            }
        }

        /// The line as text with control characters (terminal escapes) shown as `\x1B`, not sent raw.
        static func printable(_ bytes: [UInt8]) -> String {
            guard bytes.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                return String(decoding: bytes, as: UTF8.self)
            }
            var cleaned: [UInt8] = []
            cleaned.reserveCapacity(bytes.count)
            for byte in bytes {
                if (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                    cleaned.append(contentsOf: Array(String(format: "\\x%02X", byte).utf8))
                } else {
                    cleaned.append(byte)
                }
            }
            return String(decoding: cleaned, as: UTF8.self)
        }

        /// Says how many stderr lines were dropped; at most once a second (and once at the end).
        mutating func reportSuppressedStderr() {
            let suppressed = stderrBudget.takeSuppressed()
            guard suppressed > 0 else { return }
            lastDropReport = process.elapsed()
            logger.warning(
                "exec plugin wrote too much on stderr: \(suppressed) lines dropped (limit: \(process.limits.stderrLinesPerSecond) lines/s)",
                metadata: ["bridge.stream": "stderr", "bridge.dropped": "\(suppressed)"]
            )
        }
    }
}
