import ArgumentParser
import BridgeApp
import BridgeConfig
import BridgeCore

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

    func run() async throws {
        let configuration = try config.load()
        // The files the configuration names exist (the loader checked); here their content.
        let problems = FileChecks.problems(in: configuration)
        for warning in FileChecks.warnings(in: configuration) { printError(warning.description) }
        if !problems.isEmpty {
            for problem in problems { printError(problem.description) }
            throw ExitCode(1)
        }
        print("\(configuration.file): OK (\(configuration.subscriptions.count) subscriptions, \(configuration.sinks.count) sinks, \(configuration.router.routes.count) routes)")
    }
}
