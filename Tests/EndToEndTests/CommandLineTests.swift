import Foundation
import Testing
import TestSupport

/// SPEC section 3: `--help` on every command, and `--log-format` and `--log-level` on every one.
@Suite("command line", .machine(.processes))
struct CommandLineTests {
    static let commands: [[String]] = [
        ["run"], ["check"], ["demo"], ["simulator", "serve"], ["simulator", "mail"], ["routes", "test"], ["subscriptions"], ["sinks", "test"],
        ["dead-letters", "list"], ["dead-letters", "retry"], ["dead-letters", "purge"], ["login"],
    ]

    @Test("every command has --help with --log-format and --log-level", arguments: commands)
    func logOptions(_ command: [String]) async throws {
        let directory = TemporaryDirectory()
        let help = try await runToCompletion(command + ["--help"], directory: directory.path)
        #expect(help.0 == 0, "\(help.2)")
        #expect(help.1.contains("--log-format") && help.1.contains("--log-level"), "\(command.joined(separator: " ")) --help:\n\(help.1)")
    }
}
