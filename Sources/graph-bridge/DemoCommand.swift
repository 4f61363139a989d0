import ArgumentParser
import BridgeApp
import Foundation
import Logging

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Zero-config showcase: an embedded Graph simulator, a subscription, a synthetic new mail every few seconds, routed to stdout and demo-audit.jsonl."
    )

    @Option(help: "Seconds between synthetic mails.") var every: Double = 3
    @Option(help: "Stop making mails after this many (default: never).") var count: Int?
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap(defaultLevel: .warning)
        try await Demo.run(
            directory: FileManager.default.currentDirectoryPath,
            interval: .milliseconds(Int64(max(0.1, every) * 1000)),
            count: count,
            logger: logger
        )
    }
}
