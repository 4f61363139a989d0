/// One item of the `value` array Graph POSTs (a change or a lifecycle notification).
public struct ChangeNotification: Sendable, Hashable {
    public var subscriptionId: String
    public var clientState: String?
    public var changeType: String?
    public var lifecycleEvent: String?
    public var resource: String?
    public var resourceData: JSONValue?
    public var tenantId: String?
    public var subscriptionExpirationDateTime: String?
    /// Rich notifications: the encrypted resource data, kept for decryption after the 202.
    public var encryptedContent: JSONValue?

    /// `@odata.etag` of the resource data, used to recognise Graph's duplicates.
    public var etag: String? { resourceData?["@odata.etag"]?.stringValue }

    public var isLifecycle: Bool { lifecycleEvent != nil }
}

/// The body of a POST to `/notifications` or `/lifecycle` (`changeNotificationCollection`).
public struct ChangeNotificationCollection: Sendable {
    /// Items in the order Graph sent them; an item that is not a usable notification is nil here
    /// (it is dropped and counted, the rest of the batch still counts).
    public var items: [ChangeNotification?]
    /// JWTs that vouch for rich notifications in this batch.
    public var validationTokens: [String]

    /// Why a body is not a notification collection at all (answered 400).
    public struct EnvelopeError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(body: some Collection<UInt8>) throws(EnvelopeError) {
        let root: JSONValue
        do {
            root = try JSONParser.parse(body)
        } catch {
            throw EnvelopeError(description: error.description)
        }
        guard let object = root.objectValue else { throw EnvelopeError(description: "the body is not a JSON object") }
        guard let value = object["value"] else { throw EnvelopeError(description: "the body has no 'value' array") }
        guard let elements = value.arrayValue else { throw EnvelopeError(description: "'value' is not an array") }
        var items: [ChangeNotification?] = []
        items.reserveCapacity(elements.count)
        for element in elements {
            guard let item = element.objectValue else { throw EnvelopeError(description: "an item of 'value' is not an object") }
            items.append(ChangeNotification(item))
        }
        self.items = items
        self.validationTokens = object["validationTokens"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}

extension ChangeNotification {
    /// Reads an item; nil when it lacks a subscription id or says neither what changed nor which lifecycle event it is.
    init?(_ item: JSONObject) {
        guard let subscriptionId = item["subscriptionId"]?.stringValue, !subscriptionId.isEmpty else { return nil }
        let changeType = item["changeType"]?.stringValue
        let lifecycleEvent = item["lifecycleEvent"]?.stringValue
        guard (changeType != nil) != (lifecycleEvent != nil) else { return nil }
        self.subscriptionId = subscriptionId
        self.clientState = item["clientState"]?.stringValue
        self.changeType = changeType
        self.lifecycleEvent = lifecycleEvent
        self.resource = item["resource"]?.stringValue
        if let data = item["resourceData"], data.objectValue != nil { self.resourceData = data }
        self.tenantId = item["tenantId"]?.stringValue
        self.subscriptionExpirationDateTime = item["subscriptionExpirationDateTime"]?.stringValue
        if let content = item["encryptedContent"], content.objectValue != nil { self.encryptedContent = content }
    }
}
