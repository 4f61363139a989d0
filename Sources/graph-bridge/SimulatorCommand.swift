import ArgumentParser
import BridgeApp
import Foundation
import Logging

/// `graph-bridge simulator [serve] [options]` runs the simulator; `graph-bridge simulator mail` calls a running one.
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulator",
        abstract: "Run the embedded Microsoft Graph simulator alone, to try a bridge.yaml or login without a tenant.",
        discussion: """
            `graph-bridge simulator --port N` (the same as `graph-bridge simulator serve --port N`) runs it; with a fixed \
            port, a bridge.yaml's authorityUrl and baseUrl stay valid across restarts of the simulator. \
            `graph-bridge simulator mail --port N` sends a mail through a running simulator.
            """,
        subcommands: [Serve.self, Mail.self],
        defaultSubcommand: Serve.self
    )

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the simulator (the default): it prints its tenant, client id, secret and URLs.",
            discussion: """
                It logs at `notice` unless --log-level says otherwise: every notification the bridge did not take \
                (warning), every one delivered on a retry (notice), and every one dropped after the last retry (error).
                """
        )

        @Option(help: "Port on 127.0.0.1 (0: any free port, printed).") var port = 0
        @Flag(help: "Approve device-code sign-ins at once, as alice@contoso.com.") var approveDeviceCodes = false
        @Option(help: "Once a subscription exists, make a mail in alice's inbox every this many seconds.") var mailEvery: Double?
        @Option(
            help: ArgumentHelp(
                "Waits between retries of a notification the bridge did not take, e.g. 5s,10s,30s (default: Graph's backoff, 8 retries over 4 hours).",
                valueName: "list"))
        var retrySchedule: String?
        @OptionGroup var log: LogOptions

        func validate() throws {
            if let retrySchedule, SimulatorCommand.parseSchedule(retrySchedule) == nil {
                throw ValidationError("--retry-schedule must be a comma-separated list of durations such as 500ms, 5s, 2m or 1h")
            }
        }

        func run() async throws {
            let logger = log.bootstrap(defaultLevel: .notice)
            try await SimulatorRunner.run(
                port: port, approveDeviceCodes: approveDeviceCodes, mailEvery: mailEvery.map { .milliseconds(Int64($0 * 1000)) },
                retrySchedule: retrySchedule.flatMap(SimulatorCommand.parseSchedule),
                logger: logger, print: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) })
        }
    }

    /// `500ms,5s,2m,1h` (a bare number is seconds; empty: no retries); nil when a part doesn't read.
    static func parseSchedule(_ text: String) -> [Duration]? {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var schedule: [Duration] = []
        for part in parts where !part.isEmpty {
            let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
            let unit = units.first { part.hasSuffix($0.suffix) && Double(part.dropLast($0.suffix.count)) != nil }
            let number = Double(unit.map { String(part.dropLast($0.suffix.count)) } ?? part)
            guard let number, number >= 0 else { return nil }
            let milliseconds = number * (unit?.milliseconds ?? 1000)
            guard milliseconds < 1e12 else { return nil }  // about 31 years; also refuses inf
            schedule.append(.milliseconds(Int64(milliseconds)))
        }
        return schedule
    }

    struct Mail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a mail through a running `graph-bridge simulator` (Graph's sendMail).",
            discussion: """
                The mail lands in the inbox of each recipient that is one of the simulator's mailboxes (alice@contoso.com, \
                bob@contoso.com) and fires their subscriptions' notifications; other recipients are ignored, as Graph would \
                deliver them elsewhere. Without --subject, one of the simulator's sample mails is sent.
                """
        )

        @Option(help: "The running simulator's port on 127.0.0.1.") var port: Int
        @Option(help: "The sending mailbox (one of the simulator's).") var from = "bob@contoso.com"
        @Option(help: "A recipient (repeatable; default alice@contoso.com).") var to: [String] = []
        @Option(help: "A Cc recipient (repeatable).") var cc: [String] = []
        @Option(help: "The subject (default: a sample mail's subject and body).") var subject: String?
        @Option(help: "The body text.") var body: String?
        @Flag(help: "The body is HTML.") var html = false
        @Option(help: "low, normal or high.") var importance: String?
        @Flag(help: "Don't keep a copy in the sender's Sent Items.") var noSave = false
        @OptionGroup var log: LogOptions

        func validate() throws {
            if let importance, !["low", "normal", "high"].contains(importance.lowercased()) {
                throw ValidationError("--importance must be low, normal or high")
            }
        }

        func run() async throws {
            _ = log.bootstrap(defaultLevel: .warning)
            var mail = SimulatorRunner.Mail(port: port)
            mail.from = from
            if !to.isEmpty { mail.to = to }
            mail.cc = cc
            mail.subject = subject
            mail.body = body
            mail.contentType = html ? "html" : "text"
            mail.importance = importance?.lowercased()
            mail.saveToSentItems = !noSave
            do {
                print(try await SimulatorRunner.sendMail(mail))
            } catch let error as SimulatorRunner.MailError {
                printError("error: \(error.description)")
                throw ExitCode(1)
            }
        }
    }
}
