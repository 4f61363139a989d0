import ArgumentParser
import BridgeApp
import BridgeCore
import BridgeSettings
import Foundation
import Logging

struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Inspect and replay deliveries that failed for good.",
        discussion: "These commands read only the state: section of the configuration.",
        subcommands: [List.self, Retry.self, Purge.self]
    )

    /// `--sink`, `--since`, `--before`: which dead letters a command means.
    struct Filter: ParsableArguments {
        @Option(help: "Only dead letters of this sink (its name as stored, also for a sink since removed).")
        var sink: String?

        @Option(
            help:
                "Only those that died at or after this: a duration back from now (30m, 2h, 7d) or an ISO 8601 time or day (2026-12-06T10:00:00Z, 2026-12-06)."
        )
        var since: String?

        @Option(help: "Only those that died before this: a duration back from now (2h, 7d) or an ISO 8601 time or day.")
        var before: String?

        var isEmpty: Bool { sink == nil && since == nil && before == nil }

        func validate() throws {
            for (flag, value) in [("--since", since), ("--before", before)] {
                if let value, DeadLetterTool.time(value) == nil {
                    throw ValidationError(
                        "\(flag) takes a duration back from now (30m, 2h, 7d) or an ISO 8601 time or day (2026-12-06T10:00:00Z, 2026-12-06), not '\(value)'"
                    )
                }
            }
        }

        func selection(ids: [Int64]? = nil) -> DeadLetterSelection {
            let now = Date()
            return DeadLetterSelection(
                ids: ids, sink: sink, deadSince: since.flatMap { DeadLetterTool.time($0, now: now) },
                deadBefore: before.flatMap { DeadLetterTool.time($0, now: now) })
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters, oldest first.",
            discussion: "When more match than --limit, a last line says how many more (on standard error with --json)."
        )
        @OptionGroup var config: ConfigOption
        @OptionGroup var filter: Filter
        @Option(help: "At most this many (0: all).") var limit = 100
        @Flag(help: "One JSON object per line (JSON Lines): id, sink, event, subscription, attempts, createdAt, deadAt, error.")
        var json = false
        @OptionGroup var log: LogOptions

        func validate() throws {
            if limit < 0 { throw ValidationError("--limit must be 0 (all) or more") }
        }

        func run() async throws {
            let tool = try await DeadLetterTool.open(state: config.loadState())
            _ = log.bootstrap(defaultLevel: .warning)
            let page = try await tool.list(filter.selection(), limit: limit == 0 ? Int.max : limit)
            if page.total == 0 {
                if !json { print(filter.isEmpty ? "no dead letters" : "no dead letters match") }
                return
            }
            for letter in page.letters { print(json ? DeadLetterTool.json(letter) : DeadLetterTool.text(letter)) }
            if page.remaining > 0 {
                let more = "\(page.remaining) more (use --limit)"
                if json { printError(more) } else { print(more) }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue dead letters for delivery again (a running bridge picks them up).",
            discussion: "An id that is not a dead letter is an error, and then nothing is queued."
        )
        @OptionGroup var config: ConfigOption
        @Flag(help: "Retry every dead letter.") var all = false
        @Option(help: "Retry every dead letter of this sink.") var sink: String?
        @Argument(help: "Dead letter ids, as `list` shows them.") var ids: [Int64] = []
        @OptionGroup var log: LogOptions

        func validate() throws {
            if [all, sink != nil, !ids.isEmpty].filter({ $0 }).count != 1 { throw ValidationError("give dead letter ids, --sink NAME or --all") }
        }

        func run() async throws {
            let tool = try await DeadLetterTool.open(state: config.loadState())
            _ = log.bootstrap(defaultLevel: .warning)
            let selection = DeadLetterSelection(ids: ids.isEmpty ? nil : ids, sink: sink)
            // Dead letters of a sink since removed from the file wait in the queue until a sink of that name is back: say so.
            var orphans: [String: Int] = [:]
            if let declared = BridgeConfiguration.declaredSinkNames(path: config.config).map(Set.init) {
                for letter in try await tool.list(selection, limit: Int.max).letters where !declared.contains(letter.sink) {
                    orphans[letter.sink, default: 0] += 1
                }
            }
            let count: Int
            do {
                count = try await tool.retry(selection)
            } catch let error as UnknownDeadLetters {
                printError(error.description)
                throw ExitCode(1)
            }
            print("queued \(count) dead letter\(count == 1 ? "" : "s") for delivery")
            for (name, number) in orphans.sorted(by: { $0.key < $1.key }) {
                printError(
                    "note: \(number) of them \(number == 1 ? "is" : "are") for sink '\(name)', which \(config.config) no longer declares: \(number == 1 ? "it waits" : "they wait") in the queue until a sink of that name is back"
                )
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete dead letters for good: these ids, those matching --sink/--before/--since, or all of them.",
            discussion: "Asks for confirmation on a terminal; otherwise refuses without --yes."
        )
        @OptionGroup var config: ConfigOption
        @OptionGroup var filter: Filter
        @Flag(help: "Do not ask for confirmation.") var yes = false
        @Argument(help: "Dead letter ids, as `list` shows them (none: all that match the options).") var ids: [Int64] = []
        @OptionGroup var log: LogOptions

        func validate() throws {
            if !ids.isEmpty && !filter.isEmpty { throw ValidationError("give dead letter ids or --sink/--since/--before, not both") }
        }

        func run() async throws {
            let tool = try await DeadLetterTool.open(state: config.loadState())
            _ = log.bootstrap(defaultLevel: .warning)
            let selection = filter.selection(ids: ids.isEmpty ? nil : ids)
            do {
                if !yes {
                    // Unknown ids are named before anything is asked (the purge checks them again).
                    let page = try await tool.list(selection, limit: selection.ids == nil ? 0 : Int.max)
                    if let ids = selection.ids {
                        let found = Set(page.letters.map(\.id))
                        let unknown = ids.reduce(into: [Int64]()) { if !found.contains($1) && !$0.contains($1) { $0.append($1) } }
                        if !unknown.isEmpty { throw UnknownDeadLetters(ids: unknown) }
                    }
                    guard isatty(STDIN_FILENO) == 1 else {
                        printError(
                            "purge deletes \(page.total) dead letter\(page.total == 1 ? "" : "s") for good: add --yes to confirm (standard input is not a terminal to ask on)"
                        )
                        throw ExitCode(1)
                    }
                    guard page.total > 0 else {
                        print(filter.isEmpty ? "no dead letters" : "no dead letters match")
                        return
                    }
                    FileHandle.standardError.write(Data("delete \(page.total) dead letter\(page.total == 1 ? "" : "s") for good? [y/N] ".utf8))
                    guard let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased(), answer == "y" || answer == "yes" else {
                        print("nothing deleted")
                        return
                    }
                }
                let count = try await tool.purge(selection)
                print("deleted \(count) dead letter\(count == 1 ? "" : "s")")
            } catch let error as UnknownDeadLetters {
                printError(error.description)
                throw ExitCode(1)
            }
        }
    }
}
