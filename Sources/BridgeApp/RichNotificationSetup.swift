import BridgeConfig
import BridgeCore
import BridgeSettings
import BridgeGraph
import CurlKit
import Foundation
import GraphClient
import Logging

/// Builds rich-notification support (SPEC section 9) from the subscriptions' `encryption:` keys and
/// `graph:`: the key pairs, and the enricher that validates and decrypts after the 202.
enum RichNotificationSetup {
    /// Each subscription's current `encryption:` key pair, by subscription name; empty when none
    /// declares one. Loads the `previous:` key pairs too, to refuse an id that would name two
    /// certificates (Graph names only the id in each notification).
    static func keys(_ configuration: BridgeConfiguration) throws -> [String: RichContentKey] {
        var keys: [String: RichContentKey] = [:]
        var all: [(name: String, key: RichContentKey)] = []
        for declaration in configuration.subscriptions {
            guard let encryption = declaration.encryption else { continue }
            for (index, pair) in encryption.keyPairs.enumerated() {
                let loaded: RichContentKey
                do {
                    loaded = try key(pair)
                } catch {
                    let which = index == 0 ? "encryption:" : "encryption: previous key '\(pair.id)':"
                    throw StartupError("subscription '\(declaration.name)': \(which) \(error)")
                }
                if index == 0 { keys[declaration.name] = loaded }
                all.append((declaration.name, loaded))
            }
        }
        // One id must mean one certificate: Graph names only the id in each notification.
        var byID: [String: RichContentKey] = [:]
        for (name, key) in all.sorted(by: { $0.name < $1.name }) {
            if let other = byID[key.id], other.certificateDER != key.certificateDER {
                throw StartupError(
                    "subscription '\(name)': encryption id '\(key.id)' is used with two different certificates; give each certificate its own id")
            }
            byID[key.id] = key
        }
        return keys
    }

    /// Every subscription's `previous:` key pairs: they decrypt what Graph encrypted before a rotation.
    static func previousKeys(_ configuration: BridgeConfiguration) throws -> [RichContentKey] {
        var keys: [RichContentKey] = []
        for declaration in configuration.subscriptions {
            for pair in declaration.encryption?.previous ?? [] {
                do {
                    keys.append(try key(pair))
                } catch {
                    throw StartupError("subscription '\(declaration.name)': encryption: previous key '\(pair.id)': \(error)")
                }
            }
        }
        return keys
    }

    /// The current `encryption:` key pair, loaded from its files.
    static func key(_ encryption: SubscriptionDeclaration.Encryption) throws -> RichContentKey {
        try key(SubscriptionDeclaration.KeyPair(certificate: encryption.certificate, key: encryption.key, id: encryption.id))
    }

    /// One key pair (current or previous), loaded from its files.
    static func key(_ pair: SubscriptionDeclaration.KeyPair) throws -> RichContentKey {
        try RichContentKey(
            id: pair.id,
            certificatePEM: try String(contentsOfFile: pair.certificate.path, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: pair.key.path, encoding: .utf8)
        )
    }

    /// The enricher for `keys` and every `previous:` key pair of `configuration`; nil when there
    /// are no keys (no subscription receives rich notifications).
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
        let decryptor = RichContentDecryptor(keys: Array(keys.values) + (try previousKeys(configuration)))
        return RichNotificationEnricher(validator: validator, decryptor: decryptor, logger: logger)
    }
}
