import ArgumentParser
import BridgeApp
import Foundation
import Logging

struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulator",
        abstract: "Run the embedded Microsoft Graph simulator alone, to try a bridge.yaml or login without a tenant."
    )

    @Option(help: "Port on 127.0.0.1 (0: any free port, printed).") var port = 0
    @Flag(help: "Approve device-code sign-ins at once, as alice@contoso.com.") var approveDeviceCodes = false
    @Option(help: "Once a subscription exists, make a mail in alice's inbox every this many seconds.") var mailEvery: Double?
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = log.bootstrap(defaultLevel: .warning)
        try await SimulatorRunner.run(
            port: port, approveDeviceCodes: approveDeviceCodes, mailEvery: mailEvery.map { .milliseconds(Int64($0 * 1000)) },
            logger: logger, print: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) })
    }
}
