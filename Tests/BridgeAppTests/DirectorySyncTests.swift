import BridgeCore
import BridgeStore
import Foundation
import Logging
import TestSupport
import Testing

@testable import BridgeApp

/// A replica's directory follows the shared subscription records (what the leader creates,
/// recreates or drops), on a real SQLite store.
@Suite("directory sync")
struct DirectorySyncTests {
    static func record(_ name: String, id: String?, clientState: String, managed: Bool = true) -> SubscriptionRecord {
        SubscriptionRecord(
            name: name, graphID: id, resource: "users/a/messages", changeTypes: "created", clientState: clientState,
            notificationURL: "https://bridge.example/notifications", expiration: nil, renewedAt: nil, managed: managed)
    }

    @Test(
        "a record's Graph id is admitted; a recreate in progress is expected by its clientState; the old id is dropped; undeclared records are ignored"
    )
    func followsRecords() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("directory-sync-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try SQLiteStateStore(path: folder.appendingPathComponent("state.sqlite").path, logger: logger)
        let directory = SubscriptionDirectory([SubscriptionEntry(name: "feed", id: "F", resource: nil, clientState: "fixed")])
        let sync = DirectorySync(store: store, directory: directory, managedNames: ["inbox"], logger: logger)
        #expect(!sync.hasRead)

        try await store.saveSubscription(Self.record("inbox", id: "A", clientState: "first"))
        try await store.saveSubscription(Self.record("left-the-file", id: "L", clientState: "gone"))
        try await sync.syncOnce()
        #expect(sync.hasRead)
        #expect(directory.entry(forSubscriptionID: "a")?.name == "inbox")
        #expect(directory.entry(forSubscriptionID: "L") == nil, "only declared subscriptions are admitted")
        #expect(sync.admitted == ["a"])

        // The leader recreates it: first the record without an id and with a new clientState.
        try await store.saveSubscription(Self.record("inbox", id: nil, clientState: "second"))
        try await sync.syncOnce()
        #expect(directory.entry(forSubscriptionID: "A") == nil)
        #expect(directory.entry(forSubscriptionID: "B", clientState: "second")?.name == "inbox", "a first notification may overtake Graph's answer")
        #expect(directory.entry(forSubscriptionID: "B", clientState: "first") == nil)

        try await store.saveSubscription(Self.record("inbox", id: "B", clientState: "second"))
        try await sync.syncOnce()
        #expect(directory.entry(forSubscriptionID: "b")?.clientState == "second")
        #expect(directory.entry(forSubscriptionID: "F")?.name == "feed", "receive-only entries stay as configured")
        #expect(sync.admitted == ["b"])
    }

    struct Refresher: DirectoryRefresher {
        let sync: DirectorySync
        func refreshDirectory() async { await sync.refreshNow() }
    }

    @Test("a notification for a subscription another replica created since the last read is accepted at once: the intake reads the records before dropping it")
    func unknownIdReadsTheRecords() async throws {
        let folder = TemporaryDirectory(prefix: "directory-sync")
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try SQLiteStateStore(path: folder.file("state.sqlite"), logger: logger)
        let directory = SubscriptionDirectory([])
        let sync = DirectorySync(store: store, directory: directory, managedNames: ["inbox"], logger: logger)
        let intake = NotificationIntake(directory: directory, store: store, doorbell: Doorbell(), directoryRefresher: Refresher(sync: sync), logger: logger)
        func post(_ id: String, _ clientState: String) async -> NotificationIntake.Outcome {
            let body = #"{"value":[{"subscriptionId":"\#(id)","clientState":"\#(clientState)","changeType":"created","resource":"Users/1/Messages/\#(id)"}]}"#
            return await intake.receive(body: Array(body.utf8), endpoint: .notifications)
        }
        // Created by the leader after this replica's last periodic read.
        try await store.saveSubscription(Self.record("inbox", id: "N1", clientState: "s1"))
        let first = await post("N1", "s1")
        #expect(first.status == 202 && first.unknownSubscription == 0, "accepted without waiting for the next periodic read")
        #expect(try await store.unroutedCount() == 1)
        #expect(directory.entry(forSubscriptionID: "N1")?.name == "inbox")

        // An id nobody knows is still dropped after the read.
        let unknown = await post("nobody", "x")
        #expect(unknown.unknownSubscription == 1)
    }
}
