import Transport
public import Foundation

/// A Graph subscription as Graph returns it (`clientState` is never listed back).
public struct GraphSubscription: Sendable, Codable, Hashable {
    public var id: String
    public var resource: String
    public var changeType: String
    public var notificationUrl: String?
    public var lifecycleNotificationUrl: String?
    public var expirationDateTime: String
    public var clientState: String?
    /// Whether it delivers rich notifications (nil when Graph left the field out).
    public var includeResourceData: Bool?
    /// The certificate label rich content is encrypted for.
    public var encryptionCertificateId: String?

    /// `expirationDateTime` as a date (Graph writes up to seven fraction digits).
    public var expiration: Date? { GraphDate.parse(expirationDateTime) }
}

/// What `POST /subscriptions` needs.
public struct SubscriptionRequest: Sendable {
    public var resource: String
    public var changeTypes: [String]
    public var notificationURL: String
    public var lifecycleNotificationURL: String
    public var expiration: Date
    public var clientState: String
    public var includeResourceData: Bool
    /// Base64 DER of the public certificate, for rich notifications.
    public var encryptionCertificate: String?
    public var encryptionCertificateID: String?

    public init(resource: String, changeTypes: [String], notificationURL: String, lifecycleNotificationURL: String, expiration: Date, clientState: String,
                includeResourceData: Bool = false, encryptionCertificate: String? = nil, encryptionCertificateID: String? = nil) {
        self.resource = resource
        self.changeTypes = changeTypes
        self.notificationURL = notificationURL
        self.lifecycleNotificationURL = lifecycleNotificationURL
        self.expiration = expiration
        self.clientState = clientState
        self.includeResourceData = includeResourceData
        self.encryptionCertificate = encryptionCertificate
        self.encryptionCertificateID = encryptionCertificateID
    }
}

extension GraphClient {
    public func createSubscription(_ request: SubscriptionRequest) async throws -> GraphSubscription {
        var body: [String: Any] = [
            "changeType": request.changeTypes.joined(separator: ","),
            "notificationUrl": request.notificationURL,
            "lifecycleNotificationUrl": request.lifecycleNotificationURL,
            "resource": request.resource,
            "expirationDateTime": GraphDate.format(request.expiration),
            "clientState": request.clientState,
        ]
        if request.includeResourceData {
            body["includeResourceData"] = true
            body["encryptionCertificate"] = request.encryptionCertificate
            body["encryptionCertificateId"] = request.encryptionCertificateID
        }
        // Graph validates both URLs before answering; give it more than its own 10 s per URL.
        let response = try await send("POST", "/subscriptions", operation: "create_subscription", json: Array(try JSONSerialization.data(withJSONObject: body)), timeout: .seconds(45))
        return try decode(GraphSubscription.self, response.body)
    }

    public func subscription(id: String) async throws -> GraphSubscription {
        try decode(GraphSubscription.self, try await send("GET", "/subscriptions/\(id)", operation: "get_subscription").body)
    }

    /// Every subscription this app can see, following `@odata.nextLink`.
    public func listSubscriptions() async throws -> [GraphSubscription] {
        struct Page: Decodable {
            var value: [GraphSubscription]
            var nextLink: String?
            enum CodingKeys: String, CodingKey {
                case value
                case nextLink = "@odata.nextLink"
            }
        }
        var all: [GraphSubscription] = []
        var next: String? = "/subscriptions"
        var pages = 0
        while let url = next, pages < 100 {
            let page = try decode(Page.self, try await send("GET", url, operation: "list_subscriptions").body)
            all.append(contentsOf: page.value)
            next = page.nextLink
            pages += 1
        }
        return all
    }

    /// Renews (and so reauthorizes) a subscription until `expiration`.
    public func renewSubscription(id: String, until expiration: Date) async throws -> GraphSubscription {
        let body = Array(try JSONSerialization.data(withJSONObject: ["expirationDateTime": GraphDate.format(expiration)]))
        return try decode(GraphSubscription.self, try await send("PATCH", "/subscriptions/\(id)", operation: "renew_subscription", json: body).body)
    }

    /// Moves a rich-notification subscription to another encryption certificate (key rotation,
    /// graph-protocol 5.3), renewing it until `expiration` in the same PATCH: Graph wants
    /// `expirationDateTime` in every subscription PATCH. Counted as operation `update_encryption_certificate`.
    /// - Parameters:
    ///   - certificate: `encryptionCertificate`, base64 of the certificate's DER.
    ///   - certificateID: `encryptionCertificateId`, the label Graph echoes in each encrypted item.
    public func updateEncryptionCertificate(id: String, certificate: String, certificateID: String, until expiration: Date) async throws
        -> GraphSubscription
    {
        let body = Array(try JSONSerialization.data(withJSONObject: [
            "expirationDateTime": GraphDate.format(expiration), "encryptionCertificate": certificate, "encryptionCertificateId": certificateID,
        ]))
        return try decode(
            GraphSubscription.self, try await send("PATCH", "/subscriptions/\(id)", operation: "update_encryption_certificate", json: body).body)
    }

    public func reauthorizeSubscription(id: String) async throws {
        _ = try await send("POST", "/subscriptions/\(id)/reauthorize", operation: "reauthorize_subscription", json: [])
    }

    public func deleteSubscription(id: String) async throws {
        _ = try await send("DELETE", "/subscriptions/\(id)", operation: "delete_subscription")
    }

    /// GETs a changed item (e.g. `Users/{id}/Messages/{id}`) with `$select`; returns Graph's JSON bytes.
    public func item(resource: String, select: [String]) async throws -> [UInt8] {
        try await send("GET", Self.itemPath(resource: resource, select: select), operation: "get_item").body
    }

    /// The path `item(resource:select:)` reads: `/resource?$select=a,b`.
    public static func itemPath(resource: String, select: [String]) -> String {
        var path = resource.hasPrefix("/") ? resource : "/" + resource
        if !select.isEmpty {
            path += (path.contains("?") ? "&" : "?") + "$select=" + select.map { FormEncoding.escape($0) }.joined(separator: ",")
        }
        return path
    }

    func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw GraphError(kind: .other, status: 200, code: nil, message: "unexpected answer from Graph: \(error)", requestID: nil)
        }
    }
}

/// Graph's timestamps: `2026-12-01T11:00:00.0000000Z` in, `2026-12-01T11:00:00.000Z` out.
public enum GraphDate {
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func parse(_ text: String) -> Date? {
        // Foundation takes at most three fraction digits: cut the rest.
        var text = text
        if let dot = text.firstIndex(of: "."), let zone = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) {
            let fraction = text[text.index(after: dot)..<zone]
            if fraction.count > 3 {
                text = String(text[...dot]) + fraction.prefix(3) + text[zone...]
            }
        }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }
}
