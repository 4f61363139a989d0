import ArgumentParser
import BridgeApp
import Logging

struct SinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sinks",
        abstract: "Work with the configured sinks.",
        subcommands: [Test.self]
    )

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send one sample event through one sink for real and print the outcome (status, latency, error)."
        )

        @Argument(help: "The sink's name under sinks:.") var name: String
        @OptionGroup var config: ConfigOption
        @OptionGroup var log: LogOptions

        func run() async throws {
            let configuration = try config.load()
            let logger = log.bootstrap(defaultLevel: .warning)
            let outcome = await SinkTester.run(configuration: configuration, sinkName: name, logger: logger)
            print(outcome.line)
            if !outcome.succeeded { throw ExitCode(1) }
        }
    }
}
