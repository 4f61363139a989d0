import GraphSimulator
import Logging
import ServiceLifecycle

/// Runs a Graph simulator in this test process (so a test can inject faults, drop notifications
/// and send lifecycle events) for `body`, and stops it afterwards, also when `body` throws.
func withInProcessSimulator(
    _ configure: (inout GraphSimulator.Configuration) -> Void = { _ in }, _ body: (GraphSimulator) async throws -> Void
) async throws {
    let quiet = Logger(label: "simulator", factory: { _ in SwiftLogNoOpLogHandler() })
    var configuration = GraphSimulator.Configuration()
    configure(&configuration)
    let simulator = try GraphSimulator(configuration: configuration, logger: quiet)
    let group = ServiceGroup(configuration: .init(services: [.init(service: simulator)], logger: quiet))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        _ = try await simulator.waitUntilReady()
        do {
            try await body(simulator)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

extension GraphSimulator {
    /// The `graph:` section of a bridge.yaml that signs in to this simulator with its client secret.
    var graphSection: String {
        graphConfigSection(
            tenant: tenantID, clientId: configuration.clientID, secret: configuration.clientSecret ?? "", authority: authorityURL, baseUrl: graphBaseURL)
    }
}
