public import Foundation
import Synchronization

/// A child process started with `posix_spawn` and reaped with `waitpid` on a thread of its own:
/// what the tests used Foundation's `Process` for, with the part of its interface they use.
///
/// Why not `Process`: on Linux its `run()` (swift-corelibs-foundation before pull request 5472,
/// so Swift 6.3.1) lists `/proc/self/fd` copying all 256 bytes of each directory entry's name,
/// which reads past the end of glibc's buffer when an entry sits at its end and the next page is
/// not mapped. A parallel test run, with many descriptors open, crashed there now and then
/// (SIGSEGV in `memcpy` under `Process.run`, docs/testing.md). The bridge itself never used it:
/// the exec sink spawns plugins with `posix_spawn` too.
///
/// Like `Process`: a `Pipe` given as standard input, output or error has the child's end closed
/// here once the child has started; a `FileHandle` is only shared; nil (the default) inherits
/// this process's. Every other descriptor of this process is closed in the child.
public final class ChildProcess: @unchecked Sendable {
    public var executableURL: URL?
    public var arguments: [String]?
    /// nil: this process's environment.
    public var environment: [String: String]?
    public var currentDirectoryURL: URL?
    public var standardInput: Any?
    public var standardOutput: Any?
    public var standardError: Any?

    private struct State {
        var pid: pid_t = 0
        /// The raw `waitpid` status, once the child was reaped.
        var status: Int32?
        var handler: (@Sendable (ChildProcess) -> Void)?
    }

    private let state = Mutex(State())
    private let exited = NSCondition()

    public init() {}

    /// Called once, on the reaping thread, when the child has exited (at once when it has already).
    public var terminationHandler: (@Sendable (ChildProcess) -> Void)? {
        get { state.withLock { $0.handler } }
        set {
            let already = state.withLock { state -> Bool in
                state.handler = newValue
                return state.status != nil
            }
            if already, let newValue { newValue(self) }
        }
    }

    public var processIdentifier: Int32 { state.withLock { $0.pid } }

    public var isRunning: Bool { state.withLock { $0.pid != 0 && $0.status == nil } }

    /// The exit status, or the number of the signal that ended the child (as `Process` has it).
    public var terminationStatus: Int32 {
        guard let status = state.withLock({ $0.status }) else { return 0 }
        // WIFEXITED, WEXITSTATUS and WTERMSIG by hand (macros Swift does not import).
        return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    /// Whether a signal ended the child.
    public var exitedBySignal: Bool {
        guard let status = state.withLock({ $0.status }) else { return false }
        return status & 0x7f != 0 && status & 0x7f != 0x7f
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public func run() throws {
        guard let executable = executableURL?.path else { throw SpawnError(description: "no executable") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var childEnds: [FileHandle] = []
        for (target, stream, childReads) in [(Int32(0), standardInput, true), (1, standardOutput, false), (2, standardError, false)] {
            switch stream {
            case let pipe as Pipe:
                let end = childReads ? pipe.fileHandleForReading : pipe.fileHandleForWriting
                posix_spawn_file_actions_adddup2(&actions, end.fileDescriptor, target)
                childEnds.append(end)
            case let handle as FileHandle:
                posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, target)
            default:
                break
            }
        }
        if let directory = currentDirectoryURL?.path {
            guard let addChdir = Self.addChdir else { throw SpawnError(description: "posix_spawn cannot change folders here") }
            _ = addChdir(&actions, directory)
        }
        if let closeFrom = Self.addCloseFrom {
            _ = closeFrom(&actions, 3)
        } else {
            let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
            for fd in descriptors where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv = [executable] + (arguments ?? [])
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cEnvironment = variables.map { strdup($0) } + [nil]
        defer { for pointer in cEnvironment { free(pointer) } }
        // As Foundation's `Process` and the exec sink: a process group of its own, no signal
        // blocked, and every signal at its default (this process may block or ignore some).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigfillset(&signals)
        sigdelset(&signals, SIGKILL)
        sigdelset(&signals, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        guard spawned == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        for end in childEnds { try? end.close() }
        let child = pid
        state.withLock { $0.pid = child }
        let reaper = Thread { [self] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            let handler = state.withLock { state -> (@Sendable (ChildProcess) -> Void)? in
                state.status = status
                return state.handler
            }
            exited.lock()
            exited.broadcast()
            exited.unlock()
            handler?(self)
        }
        reaper.name = "child-\(child)"
        reaper.start()
    }

    /// Blocks the calling thread until the child has exited (run it on a thread of its own:
    /// `onOwnThread`, not the cooperative pool).
    public func waitUntilExit() {
        exited.lock()
        while state.withLock({ $0.status == nil }) { exited.wait() }
        exited.unlock()
    }

    /// SIGTERM, as `Process.terminate()`.
    public func terminate() {
        signal(SIGTERM)
    }

    /// Sends `number` to the child while it runs.
    public func signal(_ number: Int32) {
        let pid = state.withLock { $0.status == nil ? $0.pid : 0 }
        if pid > 0 { kill(pid, number) }
    }

    // GNU extensions the Glibc module does not import (no _GNU_SOURCE): looked up once by name.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }
}
