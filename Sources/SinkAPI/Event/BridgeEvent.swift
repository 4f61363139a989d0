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
    /// The members, behind one reference (copy on write): an event is copied at every step from
    /// the intake to the sinks (the journal entry, the events held for routing and for the sinks,
    /// each delivery, the activity feed), and a copy of ten members retained each of their
    /// strings and values one by one. Now a copy is one retain, and a change to a shared event
    /// copies the members first, so events behave as values as before.
    private var box: Box

    private final class Box: @unchecked Sendable {
        // Changed only through `update`, on a box no other event shares.
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private struct Fields: Hashable {
        var id: String
        var receivedAtMilliseconds: Int64
        var subscription: SubscriptionReference
        var changeType: String?
        var lifecycleEvent: String?
        var resync: Bool?
        var resource: String?
        var resourceData: JSONValue?
        var tenantId: String?
        var data: JSONValue?
    }

    private mutating func update(_ change: (inout Fields) -> Void) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
        change(&box.fields)
    }

    public var id: String {
        get { box.fields.id }
        set { update { $0.id = newValue } }
    }
    /// When the bridge accepted it, in whole milliseconds since 1970 (what the JSON carries, so an
    /// event equals its stored form exactly).
    public var receivedAtMilliseconds: Int64 {
        get { box.fields.receivedAtMilliseconds }
        set { update { $0.receivedAtMilliseconds = newValue } }
    }
    public var receivedAt: Date {
        get { Date(timeIntervalSince1970: Double(receivedAtMilliseconds) / 1000) }
        set { receivedAtMilliseconds = Int64((newValue.timeIntervalSince1970 * 1000).rounded(.down)) }
    }
    public var subscription: SubscriptionReference {
        get { box.fields.subscription }
        set { update { $0.subscription = newValue } }
    }
    /// `created`, `updated` or `deleted`; nil on lifecycle events.
    public var changeType: String? {
        get { box.fields.changeType }
        set { update { $0.changeType = newValue } }
    }
    /// `reauthorizationRequired`, `subscriptionRemoved` or `missed`; only on lifecycle events.
    public var lifecycleEvent: String? {
        get { box.fields.lifecycleEvent }
        set { update { $0.lifecycleEvent = newValue } }
    }
    /// True on an event a delta resync made (SPEC section 8): no Graph notification behind it.
    /// Nil otherwise; serialized only when true.
    public var resync: Bool? {
        get { box.fields.resync }
        set { update { $0.resync = newValue } }
    }
    public var resource: String? {
        get { box.fields.resource }
        set { update { $0.resource = newValue } }
    }
    public var resourceData: JSONValue? {
        get { box.fields.resourceData }
        set { update { $0.resourceData = newValue } }
    }
    public var tenantId: String? {
        get { box.fields.tenantId }
        set { update { $0.tenantId = newValue } }
    }
    /// The fetched item or the decrypted rich content, when either applies.
    public var data: JSONValue? {
        get { box.fields.data }
        set { update { $0.data = newValue } }
    }

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
        box = Box(
            Fields(
                id: id,
                receivedAtMilliseconds: Int64((receivedAt.timeIntervalSince1970 * 1000).rounded(.down)),
                subscription: subscription,
                changeType: changeType,
                lifecycleEvent: lifecycleEvent,
                resync: resync == true ? true : nil,
                resource: resource,
                resourceData: resourceData,
                tenantId: tenantId,
                data: data
            ))
    }

    /// Equal members, as before the members moved behind a reference (the same box is equal at once).
    public static func == (lhs: BridgeEvent, rhs: BridgeEvent) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    public func hash(into hasher: inout Hasher) {
        box.fields.hash(into: &hasher)
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

extension BridgeEvent: CustomReflectable {
    /// The members, as a test's failure message or `dump` shows a value, not the box they live in.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "id": id, "receivedAtMilliseconds": receivedAtMilliseconds, "subscription": subscription, "changeType": changeType as Any,
                "lifecycleEvent": lifecycleEvent as Any, "resync": resync as Any, "resource": resource as Any, "resourceData": resourceData as Any,
                "tenantId": tenantId as Any, "data": data as Any,
            ], displayStyle: .struct)
    }
}
