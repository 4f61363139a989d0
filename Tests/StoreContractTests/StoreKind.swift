import BridgeCore
import BridgeSettings
import BridgeStore
import Foundation
import InMemoryStore
import Logging
import PostgresStore
import Synchronization
import Testing
import TestSupport

/// What the contract needs of a store: the two protocols, and a look at the events it holds (to
/// see what pruning kept). Each implementation conforms here.
protocol ContractStore: StateStore, SubscriptionStore, StoreInspection {}

extension SQLiteStateStore: ContractStore {}
extension InMemoryStateStore: ContractStore {}
extension PostgresStateStore: ContractStore {}

/// Every store implementation the contract runs against. A new one joins with a case here and a
/// branch in `withStore` that hands the test a new, empty store and removes it afterwards.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case memory
    /// A fresh database per test on the process's PostgreSQL server (`PostgresServer`); the
    /// tests of this kind are skipped, with a message, where the PostgreSQL binaries are missing.
    case postgres

    var testDescription: String { rawValue }

    /// The kinds that can run here: `.postgres` only where the PostgreSQL binaries are (a
    /// cancelled test case would show as passed; `PostgresStoreTests` says why they are missing).
    static var allCases: [StoreKind] { PostgresServer.binariesPresent ? [.sqlite, .memory, .postgres] : [.sqlite, .memory] }

    /// Whether several replicas can be live on one store at once (SQLite: one process at a time;
    /// a replica that registers ends the others' leases).
    var sharesReplicas: Bool {
        switch self {
        case .sqlite: return false
        case .memory, .postgres: return true
        }
    }

    /// The kinds that several replicas share.
    static var shared: [StoreKind] { allCases.filter(\.sharesReplicas) }

    /// Runs `body` with a new, empty store of this kind and removes what it left behind.
    func withStore(_ body: (any ContractStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-contract-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await body(try SQLiteStateStore(path: directory + "/state.sqlite", logger: quietLogger))
        case .memory:
            try await body(InMemoryStateStore())
        case .postgres:
            guard let server = try await PostgresServer.shared() else {
                try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason))
            }
            let database = try await server.createDatabase()
            let location = try PostgresLocation.parse(server.url(database: database))
            let store = try await PostgresStateStore(location: location, logger: quietLogger)
            do {
                try await body(store)
            } catch {
                await store.shutdown()
                throw error
            }
            await store.shutdown()
        }
    }

    /// Runs `body` with two handles on one new, empty store of this kind: the same object for
    /// SQLite and memory, two separate connection pools on one database for PostgreSQL (as two
    /// replicas have).
    func withTwoHandles(_ body: (any ContractStore, any ContractStore) async throws -> Void) async throws {
        guard self == .postgres else {
            try await withStore { store in try await body(store, store) }
            return
        }
        guard let server = try await PostgresServer.shared() else {
            try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason))
        }
        let database = try await server.createDatabase()
        let location = try PostgresLocation.parse(server.url(database: database))
        let first = try await PostgresStateStore(location: location, logger: quietLogger)
        let second: PostgresStateStore
        do {
            second = try await PostgresStateStore(location: location, logger: quietLogger)
        } catch {
            await first.shutdown()
            throw error
        }
        do {
            try await body(first, second)
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
        await first.shutdown()
        await second.shutdown()
    }
}

let quietLogger = Logger(label: "store-contract", factory: { _ in SwiftLogNoOpLogHandler() })

/// A clock a test sets and moves by hand.
final class ManualClock: Sendable {
    private let date: Mutex<Date>

    init(_ date: Date) { self.date = Mutex(date) }

    var now: Date { date.withLock { $0 } }

    func advance(by seconds: TimeInterval) { date.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

// MARK: - Events and dates

/// A fixed arrival time in the past, in whole seconds (exact as seconds since 1970).
let t0 = Date(timeIntervalSince1970: 1_700_000_000)

/// The deduplication window, in seconds.
let window = DeliveryEngine.deduplicationWindow.seconds

/// An event received at `date`, to the nearest millisecond (an event carries whole milliseconds).
func makeEvent(at date: Date = t0, subscription: String = "inbox", resource: String = "Users/1/Messages/1", data: JSONValue? = nil) -> BridgeEvent {
    var event = BridgeEvent(
        id: EventID.make(at: date),
        receivedAt: date,
        subscription: SubscriptionReference(name: subscription, id: "sub-\(subscription)", resource: "Users/1/Messages"),
        changeType: "created",
        resource: resource,
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("AAMk1")]),
        tenantId: "tenant-1",
        data: data
    )
    event.receivedAtMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
    return event
}

func entry(_ event: BridgeEvent, key: String? = nil, attachment: JSONValue? = nil) -> JournalEntry {
    JournalEntry(event: event, deduplicationKey: key, attachment: attachment)
}

/// A whole second `seconds` from now on the wall clock (later than any delivery routed so far).
func wallClock(plus seconds: TimeInterval) -> Date {
    Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + seconds).rounded(.up))
}

/// `date` is within a millisecond of `earliest...latest` (stores keep seconds as a Double).
func isWithin(_ date: Date?, _ earliest: Date, _ latest: Date) -> Bool {
    guard let date else { return false }
    return date >= earliest.addingTimeInterval(-0.001) && date <= latest.addingTimeInterval(0.001)
}

extension StateStore {
    /// Journals `events` (no deduplication keys), routes each to `sinks` unchanged, and returns
    /// their deliveries (due now), by sink, in the order they were created.
    @discardableResult
    func journalAndRoute(_ events: [BridgeEvent], to sinks: [String]) async throws -> [String: [Delivery]] {
        let outcomes = try await journal(events.map { entry($0) })
        try #require(outcomes == Array(repeating: .journaled, count: events.count))
        let pending = try await unroutedEvents(limit: events.count)
        try #require(pending.map(\.event.id) == events.map(\.id))
        try await commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: sinks) })
        let ids = Set(events.map(\.id))
        var deliveries: [String: [Delivery]] = [:]
        for sink in sinks {
            deliveries[sink] = try await dueDeliveries(sink: sink, now: wallClock(plus: 1), limit: 10_000, excluding: [])
                .filter { ids.contains($0.event.id) }
                .sorted { $0.id < $1.id }
        }
        return deliveries
    }
}
