import ArgumentParser

@main
struct GraphBridge: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "graph-bridge",
        abstract: "Holds Microsoft Graph change-notification subscriptions and routes every change to sinks.",
        version: version,
        subcommands: [RunCommand.self, CheckCommand.self, DemoCommand.self, SimulatorCommand.self, RoutesCommand.self, SubscriptionsCommand.self, SinksCommand.self, DeadLettersCommand.self, LoginCommand.self],
        defaultSubcommand: nil
    )
}
