import BridgeCore
import Foundation
import Testing

@Suite("Store contract: subscription records and settings")
struct SubscriptionContractTests {
    static func record(_ name: String, lastNotificationAt: Date? = nil) -> SubscriptionRecord {
        SubscriptionRecord(
            name: name, graphID: "graph-\(name)", resource: "users/alex@contoso.com/mailFolders('Inbox')/messages",
            changeTypes: "created,updated", clientState: "secret-\(name)", notificationURL: "https://bridge.example.com/notifications",
            expiration: t0.addingTimeInterval(4230 * 60), renewedAt: t0, managed: true, lastNotificationAt: lastNotificationAt
        )
    }

    @Test("records round trip field by field, ordered by name, replaced by name", arguments: StoreKind.allCases)
    func roundTrip(kind: StoreKind) async throws {
        try await kind.withStore { store in
            #expect(try await store.subscriptionRecords().isEmpty)
            let inbox = Self.record("inbox", lastNotificationAt: t0.addingTimeInterval(5))
            // A receive-only record, and one whose create is in progress: no id, no dates.
            let calendar = SubscriptionRecord(
                name: "calendar", graphID: nil, resource: "users/alex@contoso.com/events", changeTypes: "created",
                clientState: "secret-calendar", notificationURL: "https://bridge.example.com/notifications",
                expiration: nil, renewedAt: nil, managed: false
            )
            try await store.saveSubscription(inbox)
            try await store.saveSubscription(calendar)
            #expect(try await store.subscriptionRecords() == [calendar, inbox])

            var renewed = inbox
            renewed.graphID = "graph-inbox-2"
            renewed.expiration = t0.addingTimeInterval(8000 * 60)
            renewed.renewedAt = t0.addingTimeInterval(3600)
            renewed.changeTypes = "created"
            renewed.clientState = "secret-2"
            renewed.resource = "users/alex@contoso.com/messages"
            renewed.notificationURL = "https://other.example.com/notifications"
            renewed.managed = false
            try await store.saveSubscription(renewed)
            #expect(try await store.subscriptionRecords() == [calendar, renewed])
        }
    }

    @Test("deleteSubscription removes that record only; an unknown name is no error", arguments: StoreKind.allCases)
    func delete(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.saveSubscription(Self.record("a"))
            try await store.saveSubscription(Self.record("b"))
            try await store.deleteSubscription(name: "a")
            #expect(try await store.subscriptionRecords().map(\.name) == ["b"])
            try await store.deleteSubscription(name: "never-saved")
            #expect(try await store.subscriptionRecords().map(\.name) == ["b"])
        }
    }

    @Test("saving a record without lastNotificationAt keeps the stored one; with one, replaces it", arguments: StoreKind.allCases)
    func lastNotificationKeptOnSave(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.saveSubscription(Self.record("inbox", lastNotificationAt: t0.addingTimeInterval(60)))
            var renewed = Self.record("inbox")
            renewed.renewedAt = t0.addingTimeInterval(3600)
            try await store.saveSubscription(renewed)
            let kept = try await store.subscriptionRecords()
            #expect(kept.first?.lastNotificationAt == t0.addingTimeInterval(60))
            #expect(kept.first?.renewedAt == t0.addingTimeInterval(3600))
            try await store.saveSubscription(Self.record("inbox", lastNotificationAt: t0.addingTimeInterval(120)))
            #expect(try await store.subscriptionRecords().first?.lastNotificationAt == t0.addingTimeInterval(120))
        }
    }

    @Test("journaling stamps lastNotificationAt on the event's subscription record only, and survives a save", arguments: StoreKind.allCases)
    func lastNotificationFromJournal(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.saveSubscription(Self.record("inbox"))
            try await store.saveSubscription(Self.record("calendar"))
            let arrival = t0.addingTimeInterval(42.5)
            #expect(try await store.journal([entry(makeEvent(at: arrival, subscription: "inbox"), key: "k")]) == [.journaled])
            var records = try await store.subscriptionRecords()
            #expect(records.map(\.name) == ["calendar", "inbox"])
            #expect(records.map(\.lastNotificationAt) == [nil, arrival])

            // A duplicate is not a new notification; a subscription with no record gets none.
            _ = try await store.journal([
                entry(makeEvent(at: arrival.addingTimeInterval(1), subscription: "inbox"), key: "k"),
                entry(makeEvent(at: arrival.addingTimeInterval(2), subscription: "unknown")),
            ])
            records = try await store.subscriptionRecords()
            #expect(records.map(\.name) == ["calendar", "inbox"])
            #expect(records.map(\.lastNotificationAt) == [nil, arrival])

            // The subscription manager saves renewals without it: the stamp stays.
            var renewed = Self.record("inbox")
            renewed.expiration = t0.addingTimeInterval(9000 * 60)
            try await store.saveSubscription(renewed)
            #expect(try await store.subscriptionRecords().last?.lastNotificationAt == arrival)
            #expect(try await store.subscriptionRecords().last?.expiration == t0.addingTimeInterval(9000 * 60))
        }
    }

    @Test("settings: absent is nil; set, overwrite and delete with nil", arguments: StoreKind.allCases)
    func settings(kind: StoreKind) async throws {
        try await kind.withStore { store in
            #expect(try await store.setting("refreshToken") == nil)
            try await store.setSetting("refreshToken", to: "first")
            try await store.setSetting("other", to: "kept")
            #expect(try await store.setting("refreshToken") == "first")
            try await store.setSetting("refreshToken", to: "second")
            #expect(try await store.setting("refreshToken") == "second")
            try await store.setSetting("refreshToken", to: nil)
            #expect(try await store.setting("refreshToken") == nil)
            try await store.setSetting("never-set", to: nil)
            #expect(try await store.setting("other") == "kept")
            // Empty is a value, not an absence.
            try await store.setSetting("empty", to: "")
            #expect(try await store.setting("empty") == "")
        }
    }
}
