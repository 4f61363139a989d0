public import Foundation

/// A user (and their mailbox) in the simulated tenant.
public struct SimulatedUser: Sendable, Hashable {
    /// The object id (a GUID): what notifications put in `Users/{id}/Messages/{id}`.
    public var id: String
    /// The sign-in name, e.g. `alice@contoso.com`; resource paths may use it instead of the id.
    public var userPrincipalName: String
    public var displayName: String

    public init(id: String, userPrincipalName: String, displayName: String) {
        self.id = id
        self.userPrincipalName = userPrincipalName
        self.displayName = displayName
    }

    public static let alice = SimulatedUser(
        id: "622eaaff-0683-4862-9de4-f2ec83c2bd98", userPrincipalName: "alice@contoso.com", displayName: "Alice Example")
    public static let bob = SimulatedUser(
        id: "9a1e6f3c-52b1-4c8e-b7a5-2f0d6c3e8b41", userPrincipalName: "bob@contoso.com", displayName: "Bob Example")
}

/// `emailAddress` of a recipient: `{"emailAddress": {"name": ..., "address": ...}}`.
public struct EmailAddress: Sendable, Hashable {
    public var name: String
    public var address: String

    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }
}

/// The properties of a message that a test sets (everything else is generated).
public struct MessageContent: Sendable, Hashable {
    public enum Importance: String, Sendable { case low, normal, high }

    public var subject: String
    public var from: EmailAddress?
    public var toRecipients: [EmailAddress]
    public var ccRecipients: [EmailAddress]
    /// The body text; `bodyPreview` is derived from it when nil.
    public var body: String
    /// `text` or `html`.
    public var bodyContentType: String
    public var bodyPreview: String?
    public var importance: Importance
    public var isRead: Bool
    public var hasAttachments: Bool
    public var categories: [String]
    /// When the message arrived; now when nil.
    public var receivedDateTime: Date?

    public init(
        subject: String,
        from: EmailAddress? = EmailAddress(name: "Contoso Alerts", address: "alerts@contoso.com"),
        toRecipients: [EmailAddress] = [],
        ccRecipients: [EmailAddress] = [],
        body: String = "",
        bodyContentType: String = "text",
        bodyPreview: String? = nil,
        importance: Importance = .normal,
        isRead: Bool = false,
        hasAttachments: Bool = false,
        categories: [String] = [],
        receivedDateTime: Date? = nil
    ) {
        self.subject = subject
        self.from = from
        self.toRecipients = toRecipients
        self.ccRecipients = ccRecipients
        self.body = body
        self.bodyContentType = bodyContentType
        self.bodyPreview = bodyPreview
        self.importance = importance
        self.isRead = isRead
        self.hasAttachments = hasAttachments
        self.categories = categories
        self.receivedDateTime = receivedDateTime
    }
}

/// A message in a simulated mailbox.
public struct SimulatedMessage: Sendable, Hashable {
    public var id: String
    /// The owner's object id.
    public var userID: String
    /// The folder's well-known name, lowercase (`inbox`, `archive`, ...).
    public var folder: String
    public var content: MessageContent
    /// Changes with every update; `@odata.etag` is `W/"<changeKey>"`.
    public var changeKey: String
    public var createdDateTime: Date
    public var lastModifiedDateTime: Date
    public var receivedDateTime: Date
    public var conversationID: String
    public var internetMessageID: String
    public var webLink: String

    public var etag: String { "W/\"\(changeKey)\"" }
}

/// The kinds of change a subscription can ask for.
public enum ChangeType: String, Sendable, CaseIterable {
    case created, updated, deleted
}

/// Lifecycle notifications (graph-protocol section 4).
public enum LifecycleEvent: String, Sendable, CaseIterable {
    case reauthorizationRequired, subscriptionRemoved, missed
}

/// A subscription as the simulator holds it (clientState included).
public struct SimulatedSubscription: Sendable, Hashable {
    public var id: String
    public var resource: String
    /// As sent, e.g. `created,updated`.
    public var changeType: String
    public var notificationURL: String
    public var lifecycleNotificationURL: String?
    public var clientState: String?
    public var expirationDateTime: Date
    public var applicationID: String
    /// The user for delegated calls, the service principal for app-only calls.
    public var creatorID: String
    public var includeResourceData: Bool
    public var encryptionCertificate: String?
    public var encryptionCertificateID: String?
    public var latestSupportedTLSVersion: String
    public var notificationQueryOptions: String?
    public var notificationURLAppID: String?
    public var createdAt: Date
    /// PATCHes that changed the expiry.
    public var renewals: Int
    /// `POST /reauthorize` calls.
    public var reauthorizations: Int

    /// The change types, parsed.
    public var changeTypes: Set<ChangeType> {
        Set(changeType.split(separator: ",").compactMap { ChangeType(rawValue: $0.trimmingCharacters(in: .whitespaces).lowercased()) })
    }
}

/// One HTTP call the simulator answered (identity platform and Graph alike).
public struct RecordedRequest: Sendable {
    public var method: String
    /// The path as sent (still percent-encoded).
    public var path: String
    /// The raw query string, without `?`.
    public var query: String?
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The status the simulator answered.
    public var status: Int
    public var date: Date

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first header called `name`, case-insensitively.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}

/// One POST the simulator made to a subscriber: a validation handshake or a notification attempt.
public struct DeliveryAttempt: Sendable {
    public enum Kind: String, Sendable {
        /// `POST url?validationToken=...` during create or PATCH.
        case validation
        /// A change notification (`created`, `updated`, `deleted`).
        case changeNotification
        /// A lifecycle notification.
        case lifecycleNotification
    }

    public var kind: Kind
    /// The URL posted to (with the validation token for handshakes).
    public var url: String
    public var subscriptionIDs: [String]
    /// 1 for the first try, 2 for the first retry, ...
    public var attempt: Int
    /// The response status; nil when no response came (``error`` says why).
    public var status: Int?
    public var error: String?
    public var body: [UInt8]
    public var date: Date
    /// Whether this attempt ended the delivery: success, or the last retry failed.
    public var isFinal: Bool

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public var succeeded: Bool { status.map { (200..<300).contains($0) } ?? false }
}

/// The endpoints fault injection can target.
public enum SimulatedEndpoint: String, Sendable, CaseIterable {
    case token, deviceCode
    case createSubscription, listSubscriptions, getSubscription, updateSubscription, deleteSubscription, reauthorizeSubscription
    case getMessage
    /// `GET .../messages/delta`.
    case delta
    /// `POST {mailbox}/sendMail`.
    case sendMail
    /// Every Graph (`/v1.0`) call.
    case anyGraph
    /// `POST /$batch` itself (each request inside it meets its own endpoint's faults).
    case batch
}

/// What an injected fault answers instead of the real response.
public enum Fault: Sendable, Hashable {
    /// `429 TooManyRequests` with `Retry-After: seconds`.
    case tooManyRequests(retryAfter: Int)
    /// `503 ServiceUnavailable`, with `Retry-After` when given.
    case serviceUnavailable(retryAfter: Int?)
    /// Any status with Graph's error body (the identity platform's shape on `token`/`deviceCode`).
    case error(status: Int, code: String, message: String)
    /// Answers normally, but only after `delay`.
    case delay(Duration)
}

/// A device code flow in progress, as the simulator sees it.
public struct DeviceCodeGrant: Sendable {
    public enum Status: String, Sendable { case pending, approved, declined, expired, redeemed }

    public var userCode: String
    public var deviceCode: String
    public var scopes: [String]
    public var status: Status
    /// The user it was approved for.
    public var userID: String?
    public var polls: Int
    public var expiresAt: Date
}

/// What a mailbox change did: the message as it now is, and the subscriptions notified.
public struct MessageChange: Sendable {
    public var message: SimulatedMessage
    public var changeType: ChangeType
    /// Subscriptions whose resource and change types matched (a notification was queued for each).
    public var notifiedSubscriptionIDs: [String]
}
