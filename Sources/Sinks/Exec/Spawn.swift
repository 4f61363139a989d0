import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How a plugin process ended.
enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    /// Reaped by someone else (e.g. `SIGCHLD` ignored process-wide): gone, status unknown.
    case unknown

    init(waitStatus status: Int32) {
        let signal = status & 0x7f
        if signal == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(signal)
        }
    }

    var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal):
            let names: [Int32: String] = [
                SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGABRT: "SIGABRT",
                SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE",
                SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            ]
            return "was killed by signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
        case .unknown: return "ended (exit status unknown)"
        }
    }
}

/// A started child: its pid and the parent's ends of its three standard streams (non-blocking, close-on-exec).
struct SpawnedChild {
    var pid: pid_t
    var stdin: Int32
    var stdout: Int32
    var stderr: Int32
}

struct SpawnError: Error, CustomStringConvertible {
    var description: String
}

/// posix_spawn with what a long-running plugin needs and Foundation's `Process` does not all give:
/// its own process group (a terminal's Ctrl-C reaches the bridge, which then stops the plugin in
/// order), an empty signal mask and default dispositions for every signal (the bridge's ignored
/// `SIGTERM`/`SIGPIPE` and a mask blocked by the spawning thread would otherwise be inherited),
/// every descriptor above 2 closed, and a working directory.
enum Spawner {
    // GNU extensions the Glibc module does not import (no _GNU_SOURCE); looked up once by name.
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        guard let pointer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }  // RTLD_DEFAULT
        return unsafeBitCast(pointer, to: type)
    }

    private static let pipe2Function = symbol("pipe2", as: Pipe2.self)
    private static let addCloseFrom = symbol("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self)
    private static let addChdir = symbol("posix_spawn_file_actions_addchdir_np", as: AddChdir.self)

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// A pipe whose both ends are close-on-exec from the start (no other spawn can inherit them).
    static func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let result: Int32
        if let pipe2Function {
            result = pipe2Function(&fds, O_CLOEXEC)
        } else {
            result = pipe(&fds)
            if result == 0 {
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            }
        }
        guard result == 0 else { throw SpawnError(description: "cannot create a pipe: \(errorText(errno))") }
        return (fds[0], fds[1])
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Moves a descriptor to 3 or above, so that dup2 onto 0, 1, 2 in the child never meets itself.
    private static func aboveStandardStreams(_ fd: Int32) throws(SpawnError) -> Int32 {
        guard fd < 3 else { return fd }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard moved >= 0 else { throw SpawnError(description: "cannot move a descriptor: \(errorText(errno))") }
        close(fd)
        return moved
    }

    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String
    ) throws(SpawnError) -> SpawnedChild {
        guard let addChdir else {
            throw SpawnError(description: "this C library has no posix_spawn_file_actions_addchdir_np (glibc 2.29 or later is needed)")
        }
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func make() throws(SpawnError) -> (read: Int32, write: Int32) {
            let ends = try makePipe()
            opened += [ends.read, ends.write]
            let read = try aboveStandardStreams(ends.read)
            if read != ends.read { opened.removeAll { $0 == ends.read }; opened.append(read) }
            let write = try aboveStandardStreams(ends.write)
            if write != ends.write { opened.removeAll { $0 == ends.write }; opened.append(write) }
            return (read, write)
        }
        let input = try make()
        let output = try make()
        let errors = try make()

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input.read, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)
        let chdirResult = workingDirectory.withCString { addChdir(&actions, $0) }
        guard chdirResult == 0 else { throw SpawnError(description: "cannot set the working directory: \(errorText(chdirResult))") }
        // Our own descriptors are close-on-exec already; this also closes any that other code
        // in the bridge opened without it.
        if let addCloseFrom { _ = addCloseFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigfillset(&signals)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { for pointer in argv { free(pointer) } }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer { for pointer in envp { free(pointer) } }

        var pid: pid_t = 0
        let result = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envpBuffer in
                posix_spawn(&pid, executable, &actions, &attributes, argvBuffer.baseAddress!, envpBuffer.baseAddress!)
            }
        }
        guard result == 0 else {
            var reason = errorText(result)
            if result == ENOEXEC { reason += " (a script needs a #! line)" }
            if result == ENOENT, !FileManager.default.fileExists(atPath: workingDirectory) {
                reason = "working directory \(workingDirectory) does not exist"
            }
            throw SpawnError(description: "cannot start \(executable): \(reason)")
        }
        // The child has its copies; the parent keeps only its own ends.
        for fd in [input.read, output.write, errors.write] { close(fd) }
        opened = []
        for fd in [input.write, output.read, errors.read] { setNonBlocking(fd) }
        return SpawnedChild(pid: pid, stdin: input.write, stdout: output.read, stderr: errors.read)
    }
}
