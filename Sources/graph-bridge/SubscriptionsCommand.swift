import ArgumentParser
import BridgeApp
import Logging

struct SubscriptionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions",
        abstract: "List the subscriptions in the state store: name, Graph id, resource, expiry, last notification."
    )

    @OptionGroup var config: ConfigOption
    @OptionGroup var log: LogOptions

    func run() async throws {
        let state = try config.loadState()
        _ = log.bootstrap(defaultLevel: .warning)
        for line in try await SubscriptionLister.lines(state: state) { print(line) }
    }
}

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Delegated sign-in (graph.delegated: true): device-code flow; stores the refresh token in the state store."
    )

    @OptionGroup var config: ConfigOption
    @OptionGroup var log: LogOptions

    func run() async throws {
        let configuration = try config.load()
        let logger = log.bootstrap()
        do {
            try await DelegatedLogin.run(configuration: configuration, print: { print($0) }, logger: logger)
        } catch let error as StartupError {
            printError(error.description)
            throw ExitCode(1)
        } catch {
            printError("login failed: \(error)")
            throw ExitCode(1)
        }
    }
}
