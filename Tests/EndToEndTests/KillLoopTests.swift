import Foundation
import TestSupport
import Testing

/// The short version of `scripts/soak`: random SIGKILLs while notifications flow; nothing that
/// was answered 202 may be missing from any sink afterwards.
@Suite("kill loop", .machine(.exclusive))
struct KillLoopTests {
    @Test("SIGKILL at random moments for 8 seconds loses no acknowledged notification")
    func killLoop() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // No fuzzing here (`--fuzz-seconds 0`): scripts/soak fuzzes both parsers for 60 s each by default
        // (after building the fuzzers), which held the whole machine for minutes in a parallel run.
        process.arguments = [
            "python3", root + "/scripts/soak", "--seconds", "8", "--rate", "60", "--kill-every", "0.7:2.0", "--fuzz-seconds", "0", "--binary", BridgeProcess.executable,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text: String = await onOwnThread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        let last = try #require(text.split(separator: "\n").last.map(String.init), "no output")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], "\(text)")
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(result["lost"] as? Int == 0, "\(text)")
        #expect((result["kills"] as? Int ?? 0) >= 2, "\(text)")
        #expect((result["acknowledged"] as? Int ?? 0) > 100, "\(text)")
    }
}
