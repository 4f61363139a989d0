import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import GraphSimulator
public import Logging
import ServiceLifecycle

/// `graph-bridge demo`: the whole product with nothing to set up. An embedded Graph simulator
/// (token endpoint, subscriptions API with the real validation handshake, mailboxes) and the
/// bridge run in one process on loopback. The bridge signs in, creates an inbox subscription,
/// and every few seconds a synthetic mail arrives: Graph notifies, the bridge journals, fetches
/// the mail's fields and routes the event to the console and to `demo-audit.jsonl`.
public enum Demo {
    public static func run(directory: String, interval: Duration, count: Int?, logger: Logger) async throws {
        let simulator = try GraphSimulator(configuration: .init(), logger: logger.muted(below: .warning))
        let simulatorGroup = ServiceGroup(configuration: .init(services: [.init(service: simulator)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await simulatorGroup.run() }
            let graphPort = try await simulator.waitUntilReady()
            let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-demo-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: stateDirectory) }

            let configuration = try configuration(simulator: simulator, directory: directory, stateDirectory: stateDirectory)
            FileHandle.standardError.write(Data("""
                graph-bridge demo
                  simulated Microsoft Graph  http://127.0.0.1:\(graphPort)  (tenant \(simulator.tenantID))
                  the bridge                 signs in, subscribes to alice@contoso.com's inbox, routes every new mail
                                             to this console and to \(directory)/demo-audit.jsonl
                  a new mail arrives every \(interval); stop with Ctrl-C

                """.utf8))

            // Its own task, so stopping it leaves the simulator to shut down gracefully.
            let mail = Task { try await mailLoop(simulator: simulator, interval: interval, count: count, logger: logger) }
            do {
                try await BridgeRunner.run(
                    configuration: configuration, logger: logger,
                    options: .init(publicURL: { port in "http://127.0.0.1:\(port)" }, reloadsOnSIGHUP: false)
                )
            } catch {
                mail.cancel()
                await simulatorGroup.triggerGracefulShutdown()
                throw error
            }
            // The bridge stopped (SIGINT/SIGTERM): stop the rest.
            mail.cancel()
            _ = await mail.result
            await simulatorGroup.triggerGracefulShutdown()
        }
    }

    /// The demo's bridge.yaml, pointing at the simulator.
    static func configuration(simulator: GraphSimulator, directory: String, stateDirectory: String) throws -> BridgeConfiguration {
        let yaml = """
            graph:
              tenant: \(simulator.tenantID)
              clientId: \(simulator.configuration.clientID)
              clientSecret: \(simulator.configuration.clientSecret ?? "")
              authorityUrl: \(simulator.authorityURL)
              baseUrl: \(simulator.graphBaseURL)
            server:
              listen: 127.0.0.1:0
              publicUrl: http://127.0.0.1    # replaced by the bound loopback port at run time
              admin: { listen: 127.0.0.1:0 }   # any free port: the demo must not clash with a bridge already running
            state:
              path: \(stateDirectory)/demo-state.sqlite
            subscriptions:
              - name: inbox
                resource: users/alice@contoso.com/mailFolders('Inbox')/messages
                changeTypes: [created]
                fetch: [subject, from, receivedDateTime, importance, webLink]
            sinks:
              console: { type: stdout, format: text }
              audit: { type: file, path: demo-audit.jsonl }
            routes:
              - to: [console, audit]

            """
        let document = try ConfigDocument.parse(yaml, file: "(demo)", directory: directory)
        return try BridgeConfiguration.load(document: document, registry: SinkCatalog.registry, environment: [:])
    }

    /// Puts a mail from ``SampleMails`` in alice's inbox every `interval`, once the bridge's subscription exists.
    static func mailLoop(simulator: GraphSimulator, interval: Duration, count: Int?, logger: Logger) async throws {
        while simulator.subscriptions.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
        }
        let alice = EmailAddress(name: SimulatedUser.alice.displayName, address: SimulatedUser.alice.userPrincipalName)
        var sent = 0
        while count.map({ sent < $0 }) ?? true {
            do {
                try simulator.createMessage(SampleMails.mail(sent, to: [alice]), in: alice.address)
            } catch {
                logger.warning("the simulator refused a demo mail", metadata: ["error": "\(error)"])
            }
            sent += 1
            try await Task.sleep(for: interval)
        }
    }
}

extension Logger {
    /// The same logger with a higher minimum level (the simulator's chatter stays out of the demo).
    func muted(below level: Logger.Level) -> Logger {
        var logger = self
        logger.logLevel = max(logger.logLevel, level)
        return logger
    }
}
