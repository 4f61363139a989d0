import BridgeCore
public import BridgeSettings
import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
public import Logging

/// `graph-bridge subscriptions`: what the state store knows about each subscription.
public enum SubscriptionLister {
    /// Needs only the `state:` settings; never creates the state file.
    public static func lines(state: StateSettings) async throws -> [String] {
        let place = state.url.map { "\($0)" } ?? state.path
        let empty = ["no subscriptions in \(place) yet (they are recorded when the bridge runs)"]
        guard let opened = try await OpenedStore.open(state, onlyIfPresent: true, logger: Logger(label: "graph-bridge.subscriptions")) else {
            return empty
        }
        let records: [SubscriptionRecord]
        do {
            records = try await opened.store.subscriptionRecords()
        } catch {
            await opened.shutdown()
            throw error
        }
        await opened.shutdown()
        guard !records.isEmpty else { return empty }
        let header = ["NAME", "GRAPH ID", "RESOURCE", "EXPIRES", "LAST NOTIFICATION"]
        let rows = records.map { record in
            [
                record.name + (record.managed ? "" : " (receive-only)"),
                record.graphID ?? "(being created)",
                record.resource.isEmpty ? "-" : record.resource,
                record.expiration.map(Timestamp.format) ?? "-",
                record.lastNotificationAt.map(Timestamp.format) ?? "never",
            ]
        }
        let widths = (0..<header.count).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
    }
}

/// `graph-bridge login`: the device code flow; the refresh token goes to the state store.
public enum DelegatedLogin {
    public static func run(configuration: BridgeConfiguration, print: @Sendable (String) -> Void, logger: Logger) async throws {
        guard let settings = configuration.graph else { throw StartupError("\(configuration.file): login needs a graph: section") }
        guard settings.delegated else { throw StartupError("\(configuration.file): login is for graph.delegated: true; this configuration signs in as the app") }
        let opened = try await OpenedStore.open(configuration.state, logger: logger)!
        let http = CurlClient()
        do {
            try await signIn(settings: settings, store: opened.store, http: http, configuration: configuration, print: print, logger: logger)
        } catch {
            await http.shutdown()
            await opened.shutdown()
            throw error
        }
        await http.shutdown()
        await opened.shutdown()
    }

    private static func signIn(settings: GraphSettings, store: any SubscriptionStore, http: CurlClient, configuration: BridgeConfiguration,
                               print: @Sendable (String) -> Void, logger: Logger) async throws {
        let endpoints = GraphSetup.endpoints(settings)
        let flow = DeviceCodeFlow(
            endpoints: endpoints, tenant: settings.tenant, clientID: settings.clientId, scopes: GraphSetup.delegatedScopes(endpoints), http: http, logger: logger)
        let prompt = try await flow.start()
        print(prompt.message)
        let tokens = try await flow.poll(prompt)
        guard let refresh = tokens.refreshToken else {
            throw StartupError("sign-in worked but no refresh token came back: the app registration must allow public client flows and offline_access")
        }
        try await StoredRefreshToken(store: store).saveRefreshToken(refresh)
        print(configuration.state.url.map { "Signed in. The refresh token is stored in \($0); the bridge renews it by itself." }
            ?? "Signed in. The refresh token is stored in \(configuration.state.path) (mode 0600); the bridge renews it by itself.")
    }
}
