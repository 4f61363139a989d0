import BridgeConfig
import BridgeCore
import BridgeSettings
import BridgeGraph
import BridgeStore
import CurlKit
import Foundation
import GraphClient
import Logging

/// Builds the Graph client from `graph:`: endpoints from `cloud` or the URL overrides, and the
/// credential (secret, certificate assertion, or the delegated refresh token from `login`).
enum GraphSetup {
    static func endpoints(_ settings: GraphSettings) -> GraphEndpoints {
        GraphEndpoints(
            cloud: GraphEndpoints.Cloud(rawValue: settings.cloud.rawValue) ?? .global,
            authorityOverride: settings.authorityUrl,
            graphBaseOverride: settings.baseUrl
        )
    }

    /// The client assertion signer from `graph.certificate`'s files (`check` loads them too).
    static func assertion(_ certificate: GraphSettings.CertificateCredential) throws -> CertificateAssertion {
        try CertificateAssertion(
            certificatePEM: try String(contentsOfFile: certificate.certificate.path, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: certificate.key.path, encoding: .utf8)
        )
    }

    /// Delegated sign-in asks for Graph's default scope and a refresh token.
    static func delegatedScopes(_ endpoints: GraphEndpoints) -> String { "offline_access \(endpoints.defaultScope)" }

    /// `signIn`, when given, hears how each sign-in went (`/readyz`).
    static func client(settings: GraphSettings, store: any SubscriptionStore, http: CurlClient, signIn: SignInStatus? = nil, logger: Logger) throws -> GraphClient {
        let endpoints = endpoints(settings)
        let tokens: any AccessTokenProvider
        if let secret = settings.clientSecret {
            tokens = ClientCredentialsTokenProvider(endpoints: endpoints, tenant: settings.tenant, clientID: settings.clientId, credential: .secret(secret), http: http, logger: logger)
        } else if let certificate = settings.certificate {
            let assertion: CertificateAssertion
            do {
                assertion = try Self.assertion(certificate)
            } catch {
                throw StartupError("graph.certificate: \(error)")
            }
            tokens = ClientCredentialsTokenProvider(endpoints: endpoints, tenant: settings.tenant, clientID: settings.clientId, credential: .certificate(assertion), http: http, logger: logger)
        } else {
            tokens = RefreshTokenProvider(
                endpoints: endpoints, tenant: settings.tenant, clientID: settings.clientId, scopes: delegatedScopes(endpoints),
                storage: StoredRefreshToken(store: store), http: http, logger: logger
            )
        }
        let reporting: any AccessTokenProvider = signIn.map { ReportingTokenProvider(base: tokens, status: $0) } ?? tokens
        return GraphClient(endpoints: endpoints, tokens: reporting, http: http, logger: logger)
    }
}
