public import Foundation

/// The subscription an event came through, as the event names it.
public struct SubscriptionReference: Sendable, Hashable {
    /// The `name` the subscription has in `bridge.yaml`.
    public var name: String
    /// Graph's subscription id.
    public var id: String
    /// The subscribed resource path, when known.
    public var resource: String?

    public init(name: String, id: String, resource: String?) {
        self.name = name
        self.id = id
        self.resource = resource
    }
}

/// The bridge's record of one notification (SPEC section 6): what routes match and sinks receive.
///
/// Its JSON form (``json``) is the canonical one: the journal stores it, the file sink writes it
/// byte for byte, and it is rebuilt from stored JSON with ``init(json:)``.
public struct BridgeEvent: Sendable, Hashable {
    public var id: String
    /// When the bridge accepted it, in whole milliseconds since 1970 (what the JSON carries, so an
    /// event equals its stored form exactly).
    public var receivedAtMilliseconds: Int64
    public var receivedAt: Date {
        get { Date(timeIntervalSince1970: Double(receivedAtMilliseconds) / 1000) }
        set { receivedAtMilliseconds = Int64((newValue.timeIntervalSince1970 * 1000).rounded(.down)) }
    }
    public var subscription: SubscriptionReference
    /// `created`, `updated` or `deleted`; nil on lifecycle events.
    public var changeType: String?
    /// `reauthorizationRequired`, `subscriptionRemoved` or `missed`; only on lifecycle events.
    public var lifecycleEvent: String?
    /// True on an event a delta resync made (SPEC section 8): no Graph notification behind it.
    /// Nil otherwise; serialized only when true.
    public var resync: Bool?
    public var resource: String?
    public var resourceData: JSONValue?
    public var tenantId: String?
    /// The fetched item or the decrypted rich content, when either applies.
    public var data: JSONValue?

    public init(
        id: String,
        receivedAt: Date,
        subscription: SubscriptionReference,
        changeType: String? = nil,
        lifecycleEvent: String? = nil,
        resync: Bool? = nil,
        resource: String? = nil,
        resourceData: JSONValue? = nil,
        tenantId: String? = nil,
        data: JSONValue? = nil
    ) {
        self.id = id
        self.receivedAtMilliseconds = Int64((receivedAt.timeIntervalSince1970 * 1000).rounded(.down))
        self.subscription = subscription
        self.changeType = changeType
        self.lifecycleEvent = lifecycleEvent
        self.resync = resync == true ? true : nil
        self.resource = resource
        self.resourceData = resourceData
        self.tenantId = tenantId
        self.data = data
    }

    public var isLifecycle: Bool { lifecycleEvent != nil }

    /// The event as JSON, members in the order of SPEC section 6; absent fields are left out.
    public var json: JSONValue {
        var subscriptionObject: JSONObject = ["name": .string(subscription.name), "id": .string(subscription.id)]
        if let resource = subscription.resource { subscriptionObject["resource"] = .string(resource) }
        var object: JSONObject = [
            "id": .string(id),
            "receivedAt": .string(Timestamp.format(receivedAt)),
            "subscription": .object(subscriptionObject),
        ]
        if let changeType { object["changeType"] = .string(changeType) }
        if let lifecycleEvent { object["lifecycleEvent"] = .string(lifecycleEvent) }
        if resync == true { object["resync"] = .bool(true) }
        if let resource { object["resource"] = .string(resource) }
        if let resourceData { object["resourceData"] = resourceData }
        if let tenantId { object["tenantId"] = .string(tenantId) }
        if let data { object["data"] = data }
        return .object(object)
    }

    /// The canonical JSON bytes (one line, no trailing newline): ``json`` serialized, written
    /// directly (once per notification for the journal, and again by sinks that send the event).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        var first = true
        func name(_ name: StaticString) {
            out.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        // A member when it has a value; absent fields are left out, as in `json`.
        func member(_ key: StaticString, _ text: String?) {
            guard let text else { return }
            name(key)
            JSONValue.writeString(text, to: &out)
        }
        func member(_ key: StaticString, _ value: JSONValue?) {
            guard let value else { return }
            name(key)
            value.write(to: &out)
        }
        member("id", id)
        member("receivedAt", Timestamp.format(receivedAt))
        name("subscription")
        out.append(contentsOf: #"{"name":"#.utf8)
        JSONValue.writeString(subscription.name, to: &out)
        out.append(contentsOf: #","id":"#.utf8)
        JSONValue.writeString(subscription.id, to: &out)
        if let resource = subscription.resource {
            out.append(contentsOf: #","resource":"#.utf8)
            JSONValue.writeString(resource, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        member("changeType", changeType)
        member("lifecycleEvent", lifecycleEvent)
        if resync == true { member("resync", JSONValue.bool(true)) }
        member("resource", resource)
        member("resourceData", resourceData)
        member("tenantId", tenantId)
        member("data", data)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Rebuilds an event from its JSON form.
    public init(json: JSONValue) throws(JSONParseError) {
        guard let object = json.objectValue,
            let id = object["id"]?.stringValue,
            let receivedAtText = object["receivedAt"]?.stringValue,
            let receivedAt = Timestamp.parse(receivedAtText),
            let subscription = object["subscription"]?.objectValue,
            let name = subscription["name"]?.stringValue,
            let subscriptionID = subscription["id"]?.stringValue
        else { throw JSONParseError(offset: 0, reason: "not a graph-bridge event") }
        self.init(
            id: id,
            receivedAt: receivedAt.addingTimeInterval(0.000_5),  // parsed dates may sit a hair below the millisecond
            subscription: SubscriptionReference(name: name, id: subscriptionID, resource: subscription["resource"]?.stringValue),
            changeType: object["changeType"]?.stringValue,
            lifecycleEvent: object["lifecycleEvent"]?.stringValue,
            resync: object["resync"] == .bool(true) ? true : nil,
            resource: object["resource"]?.stringValue,
            resourceData: object["resourceData"],
            tenantId: object["tenantId"]?.stringValue,
            data: object["data"]
        )
    }

    public init(encoded bytes: some Collection<UInt8>) throws(JSONParseError) {
        try self.init(json: JSONParser.parse(bytes, maxDepth: 256))
    }
}
