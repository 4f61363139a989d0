import ArgumentParser
import BridgeApp
import Foundation

struct RoutesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes",
        abstract: "Inspect routing.",
        subcommands: [Test.self]
    )

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print, for each item of a notification body, the sinks it would reach. Sends nothing."
        )

        @OptionGroup var config: ConfigOption

        @Argument(help: "A JSON file shaped like Graph's POST body ({\"value\": [...]}).")
        var notification: String

        func run() async throws {
            let configuration = try config.load()
            guard let body = FileManager.default.contents(atPath: notification) else {
                printError("\(notification): cannot read the file")
                throw ExitCode(1)
            }
            do {
                for line in try RouteTester.describe(body: Array(body), configuration: configuration) { print(line) }
            } catch {
                printError("\(notification): \(error)")
                throw ExitCode(1)
            }
        }
    }
}
