import Foundation
import GraphSimulator
public import Logging
import ServiceLifecycle
import UnixSignals

/// `graph-bridge simulator`: the Graph simulator on its own, to try a `bridge.yaml` (with
/// `authorityUrl`/`baseUrl` pointing at it) or `login` without a tenant.
public enum SimulatorRunner {
    public static func run(port: Int, approveDeviceCodes: Bool, mailEvery: Duration?, logger: Logger, print: @escaping @Sendable (String) -> Void) async throws {
        var configuration = GraphSimulator.Configuration()
        configuration.port = port
        if approveDeviceCodes { configuration.autoApproveDeviceCodesAs = SimulatedUser.alice.userPrincipalName }
        let simulator = try GraphSimulator(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: simulator)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let bound = try await simulator.waitUntilReady()
            print("""
                graph simulator listening on http://127.0.0.1:\(bound)
                  tenant:        \(simulator.tenantID)
                  clientId:      \(configuration.clientID)
                  clientSecret:  \(configuration.clientSecret ?? "-")
                  authorityUrl:  \(simulator.authorityURL)
                  baseUrl:       \(simulator.graphBaseURL)
                  mailboxes:     \(configuration.users.map(\.userPrincipalName).joined(separator: ", "))
                """)
            if let mailEvery {
                tasks.addTask {
                    while simulator.subscriptions.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
                    var n = 0
                    while !Task.isCancelled {
                        n += 1
                        _ = try? simulator.createMessage(MessageContent(subject: "Simulated mail \(n)"), in: SimulatedUser.alice.userPrincipalName)
                        try await Task.sleep(for: mailEvery)
                    }
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}
