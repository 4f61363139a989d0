import ArgumentParser
import BridgeApp
import Foundation
import Logging

struct RoutesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes",
        abstract: "Inspect routing.",
        subcommands: [Test.self]
    )

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print, for each item of a notification body, what the bridge would do with it: the sinks it would reach, or why it would be dropped. Sends nothing.",
            discussion: """
                Items go through the same checks as in the running bridge: an unknown subscription id or a wrong clientState is dropped. \
                Managed subscriptions are known by the Graph id the state file holds; one the bridge has not created yet is matched by resource. \
                With --expect, exits 1 when the sinks of any item differ (for CI).
                """
        )

        @OptionGroup var config: ConfigOption

        @Option(
            help: ArgumentHelp(
                "The sinks every item must reach, comma-separated, in any order; an empty value means dropped or no sink.", valueName: "SINK,..."))
        var expect: String?

        @OptionGroup var log: LogOptions

        @Argument(help: "A JSON file shaped like Graph's POST body ({\"value\": [...]}).")
        var notification: String

        func run() async throws {
            let configuration = try config.load()
            _ = log.bootstrap(defaultLevel: .warning)
            guard let body = FileManager.default.contents(atPath: notification) else {
                printError("\(notification): cannot read the file")
                throw ExitCode(1)
            }
            let outcomes: [RouteTester.Outcome]
            do {
                outcomes = try await RouteTester.run(body: Array(body), configuration: configuration)
            } catch {
                printError("\(notification): \(error)")
                throw ExitCode(1)
            }
            for outcome in outcomes { print(outcome.line) }
            guard let expect else { return }
            let expected = expect.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let mismatches = RouteTester.mismatches(outcomes, expected: expected)
            for mismatch in mismatches { printError(mismatch) }
            if !mismatches.isEmpty { throw ExitCode(1) }
        }
    }
}
