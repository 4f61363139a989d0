import BridgeConfig
import BridgeCore
import BridgeGraph
import CurlKit
import Foundation
import GraphClient
import Logging

/// Builds rich-notification support (SPEC section 9) from the subscriptions' `encryption:` keys and
/// `graph:`: the key pairs, and the enricher that validates and decrypts after the 202.
enum RichNotificationSetup {
    /// Each subscription's `encryption:` key pair, by subscription name; empty when none declares one.
    static func keys(_ configuration: BridgeConfiguration) throws -> [String: RichContentKey] {
        var keys: [String: RichContentKey] = [:]
        for declaration in configuration.subscriptions {
            guard let encryption = declaration.encryption else { continue }
            do {
                keys[declaration.name] = try key(encryption)
            } catch {
                throw StartupError("subscription '\(declaration.name)': encryption: \(error)")
            }
        }
        // One id must mean one certificate: Graph names only the id in each notification.
        var byID: [String: RichContentKey] = [:]
        for (name, key) in keys.sorted(by: { $0.key < $1.key }) {
            if let other = byID[key.id], other.certificateDER != key.certificateDER {
                throw StartupError(
                    "subscription '\(name)': encryption id '\(key.id)' is used with two different certificates; give each certificate its own id")
            }
            byID[key.id] = key
        }
        return keys
    }

    /// One `encryption:` key pair, loaded from its files.
    static func key(_ encryption: SubscriptionDeclaration.Encryption) throws -> RichContentKey {
        try RichContentKey(
            id: encryption.id,
            certificatePEM: try String(contentsOfFile: encryption.certificate.path, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: encryption.key.path, encoding: .utf8)
        )
    }

    /// The enricher for `keys`; nil when there are none (no subscription receives rich notifications).
    static func enricher(keys: [String: RichContentKey], configuration: BridgeConfiguration, http: CurlClient, logger: Logger) throws
        -> RichNotificationEnricher?
    {
        guard !keys.isEmpty else { return nil }
        guard let graph = configuration.graph else {
            throw StartupError(
                "\(configuration.file): rich notifications (encryption:) need graph: with tenant and clientId, to check Graph's validation tokens")
        }
        let endpoints = GraphSetup.endpoints(graph)
        let validator = ValidationTokenValidator(
            policy: .init(audiences: [graph.clientId], tenant: graph.tenant, authority: endpoints.authority),
            keys: AuthoritySigningKeys(http: http, endpoints: endpoints, tenant: graph.tenant)
        )
        return RichNotificationEnricher(validator: validator, decryptor: RichContentDecryptor(keys: Array(keys.values)), logger: logger)
    }
}
