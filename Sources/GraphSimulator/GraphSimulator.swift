// A faithful stand-in for the Microsoft identity platform and Microsoft Graph change notifications,
// served on loopback for integration tests and `graph-bridge demo`.
//
// What is faithful (per shared/reference/graph-protocol.md):
// - Identity platform v2.0: `POST /{tenant}/oauth2/v2.0/token` for `client_credentials` (secret in the
//   body or HTTP Basic; or a `private_key_jwt` assertion: PS256 with `x5t#S256`, RS256 with `x5t` as the
//   fallback, signature checked against a registered certificate, `aud` = the token endpoint,
//   `iss` = `sub` = client id, `jti` present, `exp` in the future and at most 10 min after `nbf`),
//   `scope` must be one `/.default`; the device code flow (`/devicecode`, `authorization_pending`,
//   `slow_down`, `expired_token`, `authorization_declined`, `bad_verification_code`); the refresh token
//   grant, which rotates the refresh token. Errors in the platform's shape (`error`,
//   `error_description` starting `AADSTSnnnn:`, `error_codes`, `timestamp`, `trace_id`,
//   `correlation_id`), 400, or 401 for `invalid_client`. OpenID configuration and JWKS.
// - Graph `/v1.0/subscriptions`: create with Graph's validation (required fields, HTTPS, expiry in the
//   future and within the per-resource maximum of graph-protocol 1.3, `clientState` ≤ 128,
//   `lifecycleNotificationUrl` required for Teams beyond 1 h, rich-notification certificate fields), the
//   real validation handshake on both URLs (10 s deadline, 200 and the exact token, Graph's three
//   failure messages), 409 for a repeated changeType + resource, 403 beyond the quota; GET, list (paged
//   by `@odata.nextLink`, never `clientState`), PATCH (expiry or notificationUrl; 404
//   `ResourceNotFound` when gone), DELETE 204, `/reauthorize` 204; expired subscriptions vanish.
//   `request-id`/`client-request-id` headers and Graph's error body everywhere; 401
//   `InvalidAuthenticationToken` without a valid bearer token.
// - Mail: `users/{id|upn}/messages/{id}`, `.../mailFolders('Inbox')/messages/{id}`, `me/...` for
//   delegated tokens, with `$select`; `ErrorItemNotFound` for deleted messages. `POST .../sendMail`
//   (202, the mail in each known recipient's Inbox and the sender's Sent Items; see
//   GraphSimulator+SendMail.swift for what is simplified).
// - Load: JSON `POST /v1.0/$batch` (1 to 20 requests, served concurrently, per-request `id`,
//   `status`, `headers` with `Retry-After`, `body`); Outlook's 4 concurrent requests per mailbox
//   (429 `MailboxConcurrency`, `Retry-After: 1`; a request inside a batch counts), with the peak
//   recorded per mailbox, and a mailbox throttled on demand (GraphSimulator+Batch.swift).
// - Delivery: notifications shaped like graph-vectors/notification-samples.json, batched per URL, POSTed
//   with a 3 s timeout, retried after a refused connection, a timeout or a non-2xx with exponential
//   backoff for 4 h (``graphRetrySchedule``; Graph publishes no intervals), each failure and each
//   retry logged, optionally duplicated;
//   lifecycle events to `lifecycleNotificationUrl` (or `notificationUrl`); rich notifications
//   (`includeResourceData`) carry `encryptedContent` (RSA-OAEP-SHA1 + AES-256-CBC + HMAC-SHA256, as
//   graph-protocol 5.3) and RS256 `validationTokens`.
//
// What is simplified:
// - One app registration per simulator; no permission (role/scope) checks beyond "delegated tokens reach
//   only their own mailbox"; `AADSTS` numbers are best-effort where the docs don't give them.
// - Only messages produce change notifications. Other resources can be subscribed to (with their real
//   lifetime limits) but never fire. Matching rules: a subscription's `resource` (query stripped, case
//   ignored, `mailFolders('X')` read as `mailFolders/X`) matches a message when it is
//   `{users/{id|upn} | me}/messages` (any folder of that mailbox) or
//   `{users/{id|upn} | me}/mailFolders/{folder}/messages` (that folder, by well-known name or id), and
//   its `changeType` lists the change. `me` means the subscription's creator.
// - Stricter than Entra in one place, on purpose: a redeemed refresh token is invalid at once
//   (`invalid_grant`), so a client that doesn't store the rotated one fails in tests.
// - Device-code polling speed isn't policed: `slow_down` is scripted (``slowDownDeviceCode``).
// - The handshake answer's Content-Type isn't checked (Graph accepts the samples' `text/html` too).
// - A duplicate (409) is the same creator, the same set of change types and the same resource path.
// - `validationTokens` and access tokens name the real Microsoft issuers (`sts.windows.net`,
//   `login.microsoftonline.com`) but are signed with the simulator's key, published in its JWKS.
// - Delta queries on messages only (GraphSimulator+Delta.swift says what is simplified).
// - No throttling of slow endpoints, no delivery pause on reauthorization; quotas
//   are one number; every timing is configurable so tests run in seconds.

import CurlKit
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
import _CryptoExtras

/// The Graph simulator: one Hummingbird app on loopback serving the identity platform (under
/// ``authorityURL``) and Graph (under ``graphBaseURL``), plus a Swift API to script mailboxes,
/// lifecycle events, device-code approvals and faults. Run it as a `Service` (in a `ServiceGroup`),
/// then `await` ``waitUntilReady()`` for the port.
///
/// ```swift
/// var configuration = GraphSimulator.Configuration()
/// configuration.maxSubscriptionLifetime = .seconds(10)
/// let simulator = try GraphSimulator(configuration: configuration, logger: logger)
/// // group = ServiceGroup(services: [simulator, ...]); run it
/// let port = try await simulator.waitUntilReady()
/// try await simulator.createMessage(MessageContent(subject: "Hi"), in: "alice@contoso.com")
/// ```
public final class GraphSimulator: Service, Sendable {
    public let configuration: Configuration
    let logger: Logger
    let signingKey: _RSA.Signing.PrivateKey
    /// A self-signed certificate for ``signingKey``: `x5t` and `x5c` in the JWKS.
    let signingCertificate: SelfSignedCertificate
    let certificates: [RegisteredCertificate]
    let state: Mutex<SimulatorState>
    let client: CurlClient
    let queue: DeliveryQueue
    let readiness = Readiness()
    let requestLog = EventLog<RecordedRequest>()
    let deliveryLog = EventLog<DeliveryAttempt>()
    /// Requests in flight per mailbox (Outlook's limit of 4), see GraphSimulator+Batch.swift.
    let mailboxLoad = MailboxLoad()

    /// - Throws: ``CertificateError`` or a swift-crypto error when a configured PEM can't be read.
    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "graph-simulator", factory: { _ in SwiftLogNoOpLogHandler() }))
        throws
    {
        self.configuration = configuration
        self.logger = logger
        if let pem = configuration.signingKeyPEM {
            signingKey = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
        } else {
            signingKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        }
        signingCertificate = try SelfSignedCertificate(
            key: signingKey, commonName: "accounts.accesscontrol.windows.net", notBefore: Date().addingTimeInterval(-86_400),
            validFor: 86_400 * 365 * 5)
        certificates = try configuration.certificatePEMs.map { try RegisteredCertificate(pem: $0) }
        state = Mutex(
            SimulatorState(
                maxSubscriptionLifetime: configuration.maxSubscriptionLifetime,
                subscriptionQuota: configuration.subscriptionQuota,
                duplicateNotifications: configuration.duplicateNotifications
            ))
        client = CurlClient(configuration: .init(userAgent: "graph-simulator"))
        queue = DeliveryQueue()
    }

    // MARK: Service

    /// Serves until graceful shutdown (or cancellation), delivering notifications meanwhile.
    public func run() async throws {
        do {
            try await makeApplication().run()
        } catch {
            readiness.fail(error)
            queue.finish()
            await client.shutdown()
            throw error
        }
        readiness.fail(SimulatorError(message: "the simulator stopped"))
        queue.finish()
        await client.shutdown()
    }

    /// The bound port, once the listener is up.
    ///
    /// - Throws: the listener's error when it could not start.
    public func waitUntilReady() async throws -> Int {
        try await readiness.port()
    }

    /// The bound port; nil before the listener is up.
    public var port: Int? { readiness.currentPort }

    /// `http://127.0.0.1:PORT`: the authority (`login.microsoftonline.com` stand-in). Valid once
    /// ``waitUntilReady()`` returned.
    public var authorityURL: String { "http://\(configuration.host):\(port ?? configuration.port)" }

    /// `http://127.0.0.1:PORT/v1.0`: the Graph base URL (`https://graph.microsoft.com/v1.0` stand-in).
    public var graphBaseURL: String { authorityURL + "/v1.0" }

    /// The token endpoint for the simulated tenant.
    public var tokenURL: String { "\(authorityURL)/\(configuration.tenantID)/oauth2/v2.0/token" }

    /// The JWKS URL (`.../discovery/v2.0/keys`) with the key that signs tokens and `validationTokens`.
    public var jwksURL: String { "\(authorityURL)/\(configuration.tenantID)/discovery/v2.0/keys" }

    public var tenantID: String { configuration.tenantID }

    /// The `kid` and public key (SPKI PEM) that sign tokens and `validationTokens`.
    public var signingPublicKeyPEM: String { signingKey.publicKey.pemRepresentation }

    // MARK: Snapshots

    /// Active subscriptions, in creation order (clientState included).
    public var subscriptions: [SimulatedSubscription] {
        state.withLock { state in
            state.purgeExpired(now: Date())
            return state.orderedSubscriptions
        }
    }

    /// One subscription by id; nil when unknown or expired.
    public func subscription(id: String) -> SimulatedSubscription? {
        state.withLock { state in
            state.purgeExpired(now: Date())
            return state.subscriptions[id]
        }
    }

    /// Every call answered so far, oldest first.
    public var requests: [RecordedRequest] { requestLog.items }

    /// Every validation handshake and notification attempt so far, oldest first.
    public var deliveries: [DeliveryAttempt] { deliveryLog.items }

    /// Forgets the request and delivery logs.
    public func clearLogs() {
        requestLog.clear()
        deliveryLog.clear()
    }

    /// Messages currently in the mailboxes (deleted ones are gone).
    public var messages: [SimulatedMessage] {
        state.withLock { $0.messages.values.sorted { ($0.createdDateTime, $0.id) < ($1.createdDateTime, $1.id) } }
    }

    /// Device code flows started so far.
    public var deviceCodes: [DeviceCodeGrant] {
        state.withLock { $0.deviceCodes.values.sorted { $0.expiresAt < $1.expiresAt } }
    }

    // MARK: Faults and scripting

    /// The next `count` calls to `endpoint` answer `fault` instead (queued after earlier faults).
    public func injectFault(_ fault: Fault, on endpoint: SimulatedEndpoint, count: Int = 1) {
        state.withLock { state in
            state.faults[endpoint, default: []] += Array(repeating: fault, count: max(0, count))
        }
    }

    /// Drops pending injected faults.
    public func clearFaults() {
        state.withLock { $0.faults = [:] }
    }

    /// Removes a subscription silently (no lifecycle event), as when Graph loses one: the next GET,
    /// PATCH, DELETE or reauthorize answers 404. Returns whether it existed.
    @discardableResult
    public func forgetSubscription(id: String) -> Bool {
        state.withLock { $0.subscriptions.removeValue(forKey: id) != nil }
    }

    /// Expires a subscription now (it is gone from then on, as after its `expirationDateTime`). Returns whether it existed.
    @discardableResult
    public func expireSubscription(id: String) -> Bool {
        state.withLock { state in
            guard state.subscriptions[id] != nil else { return false }
            state.subscriptions[id] = nil
            return true
        }
    }

    /// Changes the cap on subscription lifetimes (nil: Graph's per-resource table only).
    public func setMaxSubscriptionLifetime(_ cap: Duration?) {
        state.withLock { $0.maxSubscriptionLifetime = cap }
    }

    /// Changes the subscription quota (see ``Configuration/subscriptionQuota``).
    public func setSubscriptionQuota(_ quota: Int) {
        state.withLock { $0.subscriptionQuota = quota }
    }

    /// Turns Graph-style duplicate deliveries on or off.
    public func setDuplicateNotifications(_ enabled: Bool) {
        state.withLock { $0.duplicateNotifications = enabled }
    }

    /// Makes every access token issued so far expired (refresh tokens stay valid), so the next Graph
    /// call with one answers 401 "Lifetime validation failed, the token is expired."
    public func expireAccessTokens() {
        state.withLock { state in
            let past = Date().addingTimeInterval(-1)
            for key in state.accessTokens.keys { state.accessTokens[key]?.expiresAt = past }
        }
    }

    /// Invalidates every refresh token (the next refresh answers `invalid_grant`).
    public func revokeRefreshTokens() {
        state.withLock { $0.refreshTokens = [:] }
    }

    // MARK: Helpers

    func user(matching idOrUPN: String) -> SimulatedUser? {
        let wanted = idOrUPN.lowercased()
        return configuration.users.first { $0.id.lowercased() == wanted || $0.userPrincipalName.lowercased() == wanted }
    }
}

/// A misuse of the simulator's Swift API (unknown mailbox, message or subscription).
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(message: String) { self.message = message }

    public var description: String { "SimulatorError: \(message)" }
}

/// The bound port, handed to every waiter once; or the error that kept the listener from starting.
final class Readiness: Sendable {
    private let state = Mutex<(port: Int?, failure: (any Error)?, waiters: [CheckedContinuation<Int, any Error>])>((nil, nil, []))

    var currentPort: Int? { state.withLock { $0.port } }

    func set(_ port: Int) {
        let waiters = state.withLock { state in
            state.port = port
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    func fail(_ error: any Error) {
        let waiters = state.withLock { state in
            if state.failure == nil { state.failure = error }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    func port() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<Int, any Error>? = state.withLock { state in
                if let port = state.port { return .success(port) }
                if let failure = state.failure { return .failure(failure) }
                state.waiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}
