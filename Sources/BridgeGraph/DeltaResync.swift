import BridgeCore
import BridgeSettings
import Foundation
import GraphClient

/// A subscription's delta state as the store keeps it (a setting keyed by the subscription's name):
/// the last `@odata.deltaLink`, the resource it belongs to, when the query that produced it began,
/// and why a resync is owed while one is (so a stop in the middle resumes it at the next start).
struct StoredDeltaLink: Sendable, Hashable {
    var link: String
    var resource: String
    var takenAt: Date
    /// The reason of a resync that was due and has not finished.
    var pending: String?

    /// The setting's key for subscription `name`.
    static func key(for name: String) -> String { "resync.deltaLink." + name }

    static func load(_ name: String, from store: any SubscriptionStore) async throws -> StoredDeltaLink? {
        guard let text = try await store.setting(key(for: name)),
            let object = try? JSONParser.parse(text).objectValue,
            let link = object["link"]?.stringValue, let resource = object["resource"]?.stringValue,
            let takenAt = object["takenAt"]?.stringValue.flatMap(Timestamp.parse)
        else { return nil }
        return StoredDeltaLink(link: link, resource: resource, takenAt: takenAt, pending: object["pending"]?.stringValue)
    }

    func save(_ name: String, to store: any SubscriptionStore) async throws {
        var object: JSONObject = [
            "link": .string(link), "resource": .string(resource), "takenAt": .string(Timestamp.format(takenAt)),
        ]
        if let pending { object["pending"] = .string(pending) }
        try await store.setSetting(Self.key(for: name), to: String(decoding: JSONValue.object(object).serialized(), as: UTF8.self))
    }
}

/// Following a delta query to its end, and turning its items into resync events.
enum DeltaResync {
    /// An answer that is not a delta page.
    struct MalformedPage: Error, CustomStringConvertible {
        var reason: String
        var description: String { "unexpected delta answer from Graph: \(reason)" }
    }

    /// Follows `start` through every `@odata.nextLink` to the `@odata.deltaLink`, handing each
    /// page's `value` to `page` as it arrives; returns the deltaLink.
    static func follow(_ graph: any SubscriptionGraph, from start: String, page: ([JSONValue]) async throws -> Void) async throws -> String {
        var next = start
        var pages = 0
        while true {
            try Task.checkCancellation()
            pages += 1
            guard pages <= 100_000 else { throw MalformedPage(reason: "more than 100000 pages without a deltaLink") }
            let body = try await graph.deltaPage(next)
            guard let object = (try? JSONParser.parse(body, maxDepth: 256))?.objectValue else {
                throw MalformedPage(reason: "not a JSON object")
            }
            try await page(object["value"]?.arrayValue ?? [])
            if let nextLink = object["@odata.nextLink"]?.stringValue {
                next = nextLink
            } else if let deltaLink = object["@odata.deltaLink"]?.stringValue {
                return deltaLink
            } else {
                throw MalformedPage(reason: "neither @odata.nextLink nor @odata.deltaLink")
            }
        }
    }

    /// The journal entry for one item of a delta answer: `deleted` for `@removed`; `created` when
    /// the item's `createdDateTime` is not before the second of `since` (when the query that gave
    /// the deltaLink began); `updated` otherwise. Nil for an item without `id`.
    ///
    /// Graph gives `createdDateTime` in whole seconds, `since` has milliseconds: a mail created in
    /// the same second after the baseline would otherwise count as `updated`, and a subscription
    /// with `changeTypes: [created]` would miss it. An item created in that second just before the
    /// baseline and changed later is called `created` instead: an alert too many, not one lost.
    static func entry(
        for item: JSONValue, subscription: SubscriptionReference, declaredResource: String, since: Date, now: Date
    ) -> JournalEntry? {
        guard let object = item.objectValue, let id = object["id"]?.stringValue, !id.isEmpty else { return nil }
        let changeType: String
        if object["@removed"] != nil {
            changeType = "deleted"
        } else if let created = object["createdDateTime"]?.stringValue.flatMap(GraphDate.parse),
            created >= Date(timeIntervalSince1970: since.timeIntervalSince1970.rounded(.down))
        {
            changeType = "created"
        } else {
            changeType = "updated"
        }
        let resource = DeltaResource.itemResource(subscription: declaredResource, id: id)
        var resourceData: JSONObject = [:]
        if let type = object["@odata.type"] { resourceData["@odata.type"] = type }
        let etag = object["@odata.etag"]?.stringValue
        if let etag { resourceData["@odata.etag"] = .string(etag) }
        resourceData["id"] = .string(id)
        let event = BridgeEvent(
            id: EventID.make(at: now), receivedAt: now, subscription: subscription, changeType: changeType, resync: true,
            resource: resource, resourceData: .object(resourceData)
        )
        var key: String?
        if etag != nil || changeType == "deleted" {
            key = NotificationIntake.deduplicationKey(subscription: subscription.name, changeType: changeType, resource: resource, etag: etag ?? "")
        }
        return JournalEntry(event: event, deduplicationKey: key)
    }
}
