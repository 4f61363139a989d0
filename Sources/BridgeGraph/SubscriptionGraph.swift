public import Foundation
public import GraphClient

/// What the ``SubscriptionManager`` asks of Microsoft Graph: the subscription calls of
/// graph-protocol section 1 and the delta pages of section 4. ``GraphClient`` is the real one;
/// tests give the manager an in-memory Graph, so its decisions are tested without a simulator
/// process or a listener.
///
/// Failures are ``GraphError``s as ``GraphClient`` throws them: `kind == .notFound` for a
/// subscription Graph no longer has, `.conflict` for a create Graph already has, `retryAfter`
/// when Graph throttles; a `410` from ``deltaPage(_:)`` when the delta state is gone.
public protocol SubscriptionGraph: Sendable {
    /// `POST /subscriptions`.
    func createSubscription(_ request: SubscriptionRequest) async throws -> GraphSubscription
    /// `GET /subscriptions/{id}`.
    func subscription(id: String) async throws -> GraphSubscription
    /// `GET /subscriptions`, every page: the subscriptions of this app.
    func listSubscriptions() async throws -> [GraphSubscription]
    /// `PATCH /subscriptions/{id}` with a new `expirationDateTime` (renews and reauthorizes).
    func renewSubscription(id: String, until expiration: Date) async throws -> GraphSubscription
    /// `PATCH /subscriptions/{id}` with `encryptionCertificate`, `encryptionCertificateId` and a new `expirationDateTime`.
    func updateEncryptionCertificate(id: String, certificate: String, certificateID: String, until expiration: Date) async throws
        -> GraphSubscription
    /// `POST /subscriptions/{id}/reauthorize`.
    func reauthorizeSubscription(id: String) async throws
    /// `DELETE /subscriptions/{id}`.
    func deleteSubscription(id: String) async throws
    /// One page of a delta query (a path or an `@odata.nextLink`/`@odata.deltaLink`): the JSON body.
    func deltaPage(_ pathOrLink: String) async throws -> [UInt8]
}

extension GraphClient: SubscriptionGraph {}
