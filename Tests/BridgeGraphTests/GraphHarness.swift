import BridgeCore
import BridgeGraph
import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import Logging
import ServiceLifecycle
import Synchronization

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A simulator on loopback for one test; stopped gracefully at the end.
func withSimulator<T>(_ configure: (inout GraphSimulator.Configuration) -> Void = { _ in }, _ body: (GraphSimulator) async throws -> T) async throws -> T {
    var configuration = GraphSimulator.Configuration()
    configure(&configuration)
    let simulator = try GraphSimulator(configuration: configuration, logger: quiet)
    let group = ServiceGroup(configuration: .init(services: [.init(service: simulator)], logger: quiet))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        _ = try await simulator.waitUntilReady()
        do {
            let result = try await body(simulator)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
    }
}

func graphClient(for simulator: GraphSimulator, http: CurlClient, credential: ClientCredentialsTokenProvider.Credential? = nil) -> GraphClient {
    let endpoints = GraphEndpoints(authority: simulator.authorityURL, graphBase: simulator.graphBaseURL)
    let tokens = ClientCredentialsTokenProvider(
        endpoints: endpoints, tenant: simulator.tenantID, clientID: simulator.configuration.clientID,
        credential: credential ?? .secret(simulator.configuration.clientSecret ?? ""), http: http, logger: quiet)
    return GraphClient(endpoints: endpoints, tokens: tokens, http: http, logger: quiet, maxRetries: 3, maxRetryWait: .seconds(2))
}

/// The bridge's Graph side without the delivery engine: the listener (so Graph's handshake and
/// notifications reach it), the intake with its journal, and the subscription manager.
struct BridgeUnderTest {
    let store: SQLiteStateStore
    let manager: SubscriptionManager
    /// What the listener accepts notifications for.
    let subscriptions: SubscriptionDirectory
    /// Opens when the listener accepts connections.
    let readiness: ListenerReadiness

    static let inbox = SubscriptionManager.Declaration(
        name: "inbox", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages", changeTypes: ["created"], expiration: nil, includeResourceData: false)

    /// The inbox with `expiration:` set, for a simulator whose lifetime cap is short.
    static func inbox(lifetime: Duration) -> SubscriptionManager.Declaration {
        var declaration = inbox
        declaration.expiration = lifetime
        return declaration
    }

    /// Runs listener and manager until `body` returns; with `engine`, also the delivery side it builds on the store.
    static func run(
        simulator: GraphSimulator, statePath: String, declarations: [SubscriptionManager.Declaration] = [inbox], port: Int = 0,
        engine makeEngine: ((SQLiteStateStore) -> DeliveryEngine)? = nil, logger: Logger = quiet, deltaRefresh: Duration = .seconds(3600),
        _ body: (BridgeUnderTest) async throws -> Void
    ) async throws {
        let http = CurlClient()
        let store = try SQLiteStateStore(path: statePath, logger: quiet)
        let engine = makeEngine?(store)
        let directory = SubscriptionDirectory()
        let readiness = ListenerReadiness()
        let manager = SubscriptionManager(
            declarations: declarations, graph: graphClient(for: simulator, http: http), store: store, directory: directory,
            readiness: readiness, publicURL: { "http://127.0.0.1:\($0)" }, logger: logger, maxRetryDelay: .seconds(2),
            deltaRefresh: deltaRefresh)
        // As `run` does: delta resyncs journal their events and ring the dispatcher.
        manager.connectJournal(store, doorbell: engine?.journalDoorbell ?? Doorbell())
        let intake = NotificationIntake(directory: directory, store: store, doorbell: engine?.journalDoorbell ?? Doorbell(), lifecycleObserver: manager, logger: quiet)
        let server = BridgeServer(configuration: .init(host: "127.0.0.1", port: port, maxBodyBytes: 1 << 20), intake: intake, health: NoHealthCheck(), metrics: nil, logger: quiet)
        // As `run` does: the stored subscriptions are known before the listener opens.
        try await manager.admitStoredSubscriptions()
        let app = try server.makeApplication { readiness.markListening(port: $0) }
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = (engine.map { [.init(service: $0)] } ?? []) + [.init(service: manager), .init(service: app)]
        let group = ServiceGroup(configuration: .init(services: services, logger: quiet))
        let bridge = BridgeUnderTest(store: store, manager: manager, subscriptions: directory, readiness: readiness)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(bridge)
            } catch {
                await group.triggerGracefulShutdown()
                await http.shutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            await http.shutdown()
        }
    }

}

struct NoHealthCheck: HealthCheck {
    func problems() async -> [String: String] { [:] }
}

/// A refresh-token store in memory.
final class MemoryRefreshTokens: RefreshTokenStorage {
    let token = Mutex<String?>(nil)
    init(_ value: String?) { token.withLock { $0 = value } }
    func loadRefreshToken() async throws -> String? { token.withLock { $0 } }
    func saveRefreshToken(_ value: String) async throws { token.withLock { $0 = value } }
}
