extension GraphSimulator {
    /// Everything about the simulated tenant, app registration and delivery behaviour. Defaults are
    /// Graph's own numbers; tests shorten the timings.
    public struct Configuration: Sendable {
        /// How access tokens look on the wire.
        public enum AccessTokenFormat: Sendable {
            /// An RS256 JWT in the shape of a v1 Graph token, signed with the simulator's key.
            case jwt
            /// Random text without dots.
            case opaque
        }

        // MARK: Listener
        /// The address to bind. Default `127.0.0.1`.
        public var host: String = "127.0.0.1"
        /// Default 0: any free port (read it back with ``GraphSimulator/waitUntilReady()``).
        public var port: Int = 0

        // MARK: Tenant and app registration
        /// The tenant's GUID (also `tid` in tokens and `tenantId` in notifications).
        public var tenantID: String = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
        /// Domain names accepted in place of the tenant id in `/{tenant}/oauth2/...`.
        public var tenantDomains: [String] = ["contoso.onmicrosoft.com"]
        /// The app (client) id; the only one the identity platform knows.
        public var clientID: String = "8e460676-ae3f-4b1e-8790-ee0fb5d6148f"
        /// The registered client secret; nil: secrets are refused (certificate only).
        public var clientSecret: String? = "simulated-client-secret"
        /// Registered certificates (PEM), for `client_assertion` (private_key_jwt).
        public var certificatePEMs: [String] = []
        /// The app's service principal object id: `creatorId` of app-only subscriptions, `oid` of app tokens.
        public var servicePrincipalID: String = "5e1c8a8d-3b0e-4f6a-9d4e-7c2b1a0f9e83"
        /// The users and their mailboxes.
        public var users: [SimulatedUser] = [.alice, .bob]

        // MARK: Tokens
        /// `expires_in` of access tokens. Default 3599 s, as Entra answers.
        public var accessTokenLifetime: Duration = .seconds(3599)
        public var accessTokenFormat: AccessTokenFormat = .jwt
        /// The key that signs access tokens, id tokens and `validationTokens` (PEM, RSA). Nil: a new
        /// 2048-bit key per simulator.
        public var signingKeyPEM: String? = nil
        /// `kid` of that key in headers and the JWKS.
        public var signingKeyID: String = "graph-simulator-key-1"
        /// Longest accepted client assertion lifetime (`exp - nbf`). Default 10 min.
        public var maxClientAssertionLifetime: Duration = .seconds(600)
        /// Clock skew allowed on assertion `nbf`/`exp`. Default 5 min, as Entra.
        public var clockSkew: Duration = .seconds(300)
        /// Device codes: `expires_in`. Default 900 s.
        public var deviceCodeLifetime: Duration = .seconds(900)
        /// Device codes: `interval` (seconds between polls the client should keep). Default 5.
        public var deviceCodePollingInterval: Int = 5
        /// When set, every new device code is approved at once for this user (UPN or id): for demos.
        public var autoApproveDeviceCodesAs: String? = nil

        // MARK: Subscriptions
        /// Caps every resource's maximum subscription lifetime (e.g. 10 s in tests); nil: Graph's table.
        public var maxSubscriptionLifetime: Duration? = nil
        /// Active subscriptions allowed per mailbox (Outlook) or per app (other resources); beyond → 403.
        /// Default 1000, Outlook's per-mailbox quota.
        public var subscriptionQuota: Int = 1000
        /// Repeating changeType + resource answers 409 (newer Graph docs). Default true.
        public var rejectDuplicateSubscriptions: Bool = true
        /// Accept `http://` notification URLs when the host is loopback. Default true.
        public var allowHTTPForLoopback: Bool = true
        /// Deadline for a validation handshake. Default 10 s.
        public var validationTimeout: Duration = .seconds(10)
        /// Encode spaces in `validationToken` as `+` instead of `%20`. Default false.
        public var validationTokenUsesPlus: Bool = false
        /// `GET /subscriptions` page size before `@odata.nextLink`. Default 100.
        public var subscriptionPageSize: Int = 100

        // MARK: Delivery
        /// HTTP timeout of a notification POST. Default 3 s (Graph's).
        public var notificationTimeout: Duration = .seconds(3)
        /// Waits between retries of a notification that got no 2xx (a refused connection, a timeout
        /// or any other status); its length is the retry count, and after the last retry the
        /// notification is dropped. Default ``GraphSimulator/graphRetrySchedule``.
        public var retrySchedule: [Duration] = GraphSimulator.graphRetrySchedule
        /// Send every notification POST twice (Graph's at-least-once duplicates).
        public var duplicateNotifications: Bool = false

        public init() {}
    }
}

extension GraphSimulator {
    /// Graph's retries, as far as they are documented: "exponential backoff" for "up to 4 hours",
    /// then the notification is discarded (graph-protocol 3.2). The intervals themselves are not
    /// published, so this schedule doubles from 1 minute and shortens the last wait so that the last
    /// retry comes 4 hours after the first attempt: retries at 1, 3, 7, 15, 31, 63, 127 and 240
    /// minutes.
    public static let graphRetrySchedule: [Duration] = [1, 2, 4, 8, 16, 32, 64, 113].map { Duration.seconds($0 * 60) }
}
