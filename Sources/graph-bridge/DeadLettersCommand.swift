import ArgumentParser
import BridgeApp
import Foundation

struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Inspect and replay deliveries that failed for good.",
        subcommands: [List.self, Retry.self, Purge.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, oldest first.")
        @OptionGroup var config: ConfigOption
        @Option(help: "At most this many.") var limit = 100

        func run() async throws {
            let store = try DeadLetterTool(configuration: config.load())
            let lines = try await store.list(limit: limit)
            if lines.isEmpty { print("no dead letters") }
            for line in lines { print(line) }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue dead letters for delivery again (a running bridge picks them up).")
        @OptionGroup var config: ConfigOption
        @Flag(help: "Retry every dead letter.") var all = false
        @Argument(help: "Dead letter ids, as `list` shows them.") var ids: [Int64] = []

        func validate() throws {
            if all == !ids.isEmpty { throw ValidationError("give dead letter ids or --all") }
        }

        func run() async throws {
            let store = try DeadLetterTool(configuration: config.load())
            let count = try await store.retry(ids: all ? nil : ids)
            print("queued \(count) dead letter\(count == 1 ? "" : "s") for delivery")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every dead letter.")
        @OptionGroup var config: ConfigOption

        func run() async throws {
            let store = try DeadLetterTool(configuration: config.load())
            let count = try await store.purge()
            print("deleted \(count) dead letter\(count == 1 ? "" : "s")")
        }
    }
}
