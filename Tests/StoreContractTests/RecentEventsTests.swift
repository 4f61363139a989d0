import BridgeCore
import Foundation
import TestSupport
import Testing

@testable import BridgeStore

/// Routing takes what this process journaled from memory (issue 16), and must get exactly what
/// the file would have given: the model's rules, then the SQLite store against its own file
/// under random journaling and routing, in order and ahead of the mark.
@Suite("SQLite store: recent events served from memory")
struct RecentEventsTests {
    static func entry(_ sequence: Int64, by replica: String? = "r1") -> RecentEvents.Entry {
        RecentEvents.Entry(pending: PendingEvent(sequence: sequence, event: makeEvent(at: Date(timeIntervalSince1970: Double(sequence))), attachment: nil), acceptedBy: replica)
    }

    static func sequences(_ events: [PendingEvent]?) -> [Int64]? { events?.map(\.sequence) }

    // MARK: The model

    @Test("an answer is the run of consecutive numbers after the start; the first one missing ends it")
    func consecutive() {
        let recent = RecentEvents(mark: 0, lastSequence: 0)
        recent.journaled([Self.entry(1), Self.entry(2)])
        recent.journaled([Self.entry(4), Self.entry(5)])  // 3's journal call has not returned yet
        #expect(Self.sequences(recent.unrouted(after: 0, replica: "r1", limit: 10)) == [1, 2])
        #expect(Self.sequences(recent.unrouted(after: 0, replica: "r1", limit: 1)) == [1])
        recent.journaled([Self.entry(3)])
        #expect(Self.sequences(recent.unrouted(after: 0, replica: "r1", limit: 10)) == [1, 2, 3, 4, 5])
        #expect(Self.sequences(recent.unrouted(after: 3, replica: "r1", limit: 10)) == [4, 5])
    }

    @Test("events routed ahead of the mark are skipped; the mark passing drops them; another replica's are not this one's")
    func routedAndReplicas() {
        let recent = RecentEvents(mark: 0, lastSequence: 0)
        recent.journaled([Self.entry(1), Self.entry(2), Self.entry(3, by: "r2"), Self.entry(4, by: nil), Self.entry(5)])
        recent.routed([2, 5], mark: 0)
        #expect(Self.sequences(recent.unrouted(after: 0, replica: "r1", limit: 10)) == [1, 4])
        #expect(Self.sequences(recent.unrouted(after: 0, replica: nil, limit: 10)) == [1, 3, 4])
        recent.routed([1], mark: 2)
        #expect(Self.sequences(recent.unrouted(after: 0, replica: nil, limit: 10)) == [3, 4], "the mark is the start when it is higher")
    }

    @Test("what was journaled before it began, or dropped for room, is left to the file until routing passes it")
    func leftToTheFile() {
        let restarted = RecentEvents(mark: 10, lastSequence: 15)
        restarted.journaled([Self.entry(16)])
        #expect(restarted.unrouted(after: 0, replica: "r1", limit: 10) == nil, "11...15 are only in the file")
        restarted.routed([11, 12, 13, 14, 15], mark: 15)
        #expect(Self.sequences(restarted.unrouted(after: 0, replica: "r1", limit: 10)) == [16])

        let small = RecentEvents(mark: 0, lastSequence: 0, capacity: 3)
        small.journaled([Self.entry(1), Self.entry(2)])
        small.journaled([Self.entry(3), Self.entry(4)])  // no room: all forgotten up to 4
        #expect(small.unrouted(after: 0, replica: "r1", limit: 10) == nil)
        small.journaled([Self.entry(5)])
        #expect(small.unrouted(after: 2, replica: "r1", limit: 10) == nil)
        small.routed([1, 2, 3, 4], mark: 4)
        #expect(Self.sequences(small.unrouted(after: 0, replica: "r1", limit: 10)) == [5])

        let adopting = RecentEvents(mark: 0, lastSequence: 0)
        adopting.journaled([Self.entry(1, by: "r2"), Self.entry(2)])
        adopting.forget(through: 2)  // r2's lease lapsed: its events are r1's now, in the file
        #expect(adopting.unrouted(after: 0, replica: "r1", limit: 10) == nil)
        adopting.journaled([Self.entry(3)])
        adopting.routed([1, 2], mark: 2)
        #expect(Self.sequences(adopting.unrouted(after: 0, replica: "r1", limit: 10)) == [3])
    }

    // MARK: The store against its file

    static let replica = ReplicaID("recent-tests")

    /// A rich event: data, resource data and an attachment, as the intake makes them.
    static func richEvent(_ n: Int) -> JournalEntry {
        var event = makeEvent(at: Date(timeIntervalSince1970: 1_800_000_000.123_456 + Double(n)))
        event.resourceData = .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("m\(n)"), "size": .number("\(n).50")])
        event.data = .object(["subject": .string("Report \(n) — ü\n\"quoted\""), "count": .number("1e\(n % 5)"), "flags": .array([.bool(true), .null])])
        return JournalEntry(event: event, deduplicationKey: "key-\(n)", attachment: .object(["validationTokens": .array([.string("t\(n)")])]), replica: replica)
    }

    @Test("random journaling and routing, in order and ahead: every answer from memory is the file's")
    func matchesTheFile() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        var generator = SplitMix64(seed: 16)
        var journaled = 0
        var unrouted: [Int64] = []
        var servedFromMemory = 0
        for _ in 0..<200 {
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                let count = Int.random(in: 1...6, using: &generator)
                let entries = (0..<count).map { Self.richEvent(journaled + $0) }
                journaled += count
                // The first one twice: a duplicate takes no number.
                _ = try await store.journal(entries + [entries[0]])
                unrouted = try await store.unroutedEventsInFile(after: 0, replica: nil, limit: 10_000).map(\.sequence)
            case 1 where !unrouted.isEmpty:
                // Route a few: the oldest (in order) or any (ahead of the mark, as lanes do).
                let pick = Bool.random(using: &generator)
                    ? Array(unrouted.prefix(Int.random(in: 1...3, using: &generator)))
                    : [unrouted.randomElement(using: &generator)!]
                let pending = try await store.unroutedEventsInFile(after: 0, replica: nil, limit: 10_000).filter { pick.contains($0.sequence) }
                _ = try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) }, now: Date())
                unrouted.removeAll { pick.contains($0) }
            default:
                let after = unrouted.isEmpty ? 0 : unrouted.randomElement(using: &generator)! - Int64.random(in: 0...1, using: &generator)
                let limit = Int.random(in: 1...8, using: &generator)
                let fromFile = try await store.unroutedEventsInFile(after: after, replica: Self.replica.rawValue, limit: limit)
                if let fromMemory = store.recent.unrouted(after: after, replica: Self.replica.rawValue, limit: limit) {
                    servedFromMemory += 1
                    #expect(fromMemory.map(\.sequence) == fromFile.map(\.sequence), "after \(after), limit \(limit)")
                    #expect(fromMemory.map(\.event) == fromFile.map(\.event))
                    #expect(fromMemory.map(\.attachment) == fromFile.map(\.attachment))
                }
                #expect(try await store.unroutedEvents(for: Self.replica, after: after, limit: limit).map(\.sequence) == fromFile.map(\.sequence))
            }
        }
        #expect(servedFromMemory > 20, "the memory answered most reads (\(servedFromMemory))")
    }

    @Test("after a restart the backlog comes from the file, in order, and new events join it")
    func restart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        do {
            let store = try SQLiteStateStore(path: path, logger: quietLogger)
            _ = try await store.journal((0..<5).map(Self.richEvent))
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        _ = try await store.journal((5..<8).map(Self.richEvent))
        #expect(store.recent.unrouted(after: 0, replica: nil, limit: 100) == nil, "1...5 are only in the file")
        let all = try await store.unroutedEvents(for: Self.replica, after: 0, limit: 100)
        #expect(all.map(\.sequence) == Array(1...8))
        _ = try await store.commitRouting(all.prefix(5).map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: []) }, now: Date())
        #expect(Self.sequences(store.recent.unrouted(after: 0, replica: nil, limit: 100)) == [6, 7, 8], "from memory once the mark passed the backlog")
        #expect(try await store.unroutedEvents(for: Self.replica, after: 0, limit: 100).map(\.event) == all.suffix(3).map(\.event))
    }
}
