import Foundation
import Testing
@testable import TestSupport

/// `ChildProcess`, which every test that starts a process uses instead of Foundation's `Process`.
@Suite("child processes")
struct ChildProcessTests {
    /// Runs `/bin/sh -c script` with `configure` applied; returns its output and the process.
    static func shell(_ script: String, _ configure: (ChildProcess) -> Void = { _ in }) async throws -> (output: String, process: ChildProcess) {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        configure(process)
        try process.run()
        let text = await onOwnThread { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        await onOwnThread { process.waitUntilExit() }
        return (text, process)
    }

    @Test("exit status, arguments, environment and folder reach the child; the output pipe ends when it exits")
    func basics() async throws {
        let directory = TemporaryDirectory()
        let (output, process) = try await Self.shell("echo \"$GREETING $(pwd)\"; exit 3") { process in
            process.environment = ["GREETING": "hello", "PATH": "/usr/bin:/bin"]
            process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
        }
        let folder = URL(fileURLWithPath: directory.path).resolvingSymlinksInPath().path
        #expect(output == "hello \(folder)\n")
        #expect(process.terminationStatus == 3)
        #expect(!process.exitedBySignal)
        #expect(!process.isRunning)
    }

    @Test("the child has only descriptors 0, 1 and 2 of this process, whatever this process has open")
    func descriptors() async throws {
        let held = Pipe()  // open here (not close-on-exec), so the child would see it if it were inherited
        let (output, _) = try await Self.shell("ls /proc/self/fd | sort -n | tr '\\n' ' '")
        // 3 is the descriptor `ls` opens on /proc/self/fd itself.
        #expect(output == "0 1 2 3 ", "\(output) (this process holds \(held.fileHandleForReading.fileDescriptor) and more)")
    }

    @Test("a signal ends the child and is its termination status; the termination handler runs once, also when set late")
    func signals() async throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        let exit = ProcessExit(process)
        try process.run()
        #expect(process.isRunning)
        #expect(process.processIdentifier > 0)
        process.terminate()
        await exit.wait()
        #expect(process.exitedBySignal)
        #expect(process.terminationStatus == SIGTERM)
        let calls = Tally()
        process.terminationHandler = { _ in calls.add() }
        #expect(calls.count == 1, "a handler set after the exit runs at once")
    }
}
