import ArgumentParser
import BridgeApp
import BridgeConfig
import BridgeCore
import BridgeSettings
import Logging

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the bridge: listen for Graph's notifications and deliver them to the sinks."
    )

    @OptionGroup var config: ConfigOption
    @OptionGroup var log: LogOptions

    func run() async throws {
        let configuration = try config.load()
        let logger = log.bootstrap()
        do {
            try await BridgeRunner.run(configuration: configuration, logger: logger)
        } catch let error as StartupError {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the configuration: schema, environment variables, sink types, routes, templates.",
        discussion: "Exit status 0 when valid; 1 with one FILE:LINE:COL: message line per problem on standard error."
    )

    @OptionGroup var config: ConfigOption
    @OptionGroup var log: LogOptions

    func run() async throws {
        _ = log.bootstrap(defaultLevel: .warning)
        // The same load as `run`: the YAML, and the key and certificate files it names.
        let configuration = try config.load()
        for warning in FileChecks.warnings(in: configuration) { printError(warning.description) }
        let counts = [
            counted(configuration.subscriptions.count, "subscription"), counted(configuration.sinks.count, "sink"),
            counted(configuration.router.routes.count, "route"),
        ]
        print("\(configuration.file): OK (\(counts.joined(separator: ", ")))")
    }

    /// `1 sink`, `2 sinks`, `0 sinks`.
    private func counted(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }
}
