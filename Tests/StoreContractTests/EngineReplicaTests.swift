import BridgeCore
import Foundation
import Synchronization
import Testing
import TestSupport

/// Two delivery engines (two replicas) on one store, as two processes on one PostgreSQL: each
/// routes the events its replica journaled, they share the deliveries by claims, and every event
/// reaches the sink once.
@Suite("Two delivery engines on one store", .timeLimit(.minutes(1)))
struct EngineReplicaTests {
    /// Every call of the sink, in order, and a waiter for a number of distinct events.
    final class Calls: Sendable {
        private struct State {
            var calls: [(event: String, replica: String)] = []
            var distinct: Set<String> = []
        }
        private let state = Mutex(State())
        private let distinct = Tally()

        func record(_ event: String, by replica: String) {
            let new = state.withLock { state in
                state.calls.append((event, replica))
                return state.distinct.insert(event).inserted
            }
            if new { distinct.add() }
        }

        /// Returns once `count` distinct events were delivered (an issue after 30 s if not).
        func waitForDistinct(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async {
            if await !distinct.wait(for: count) {
                Issue.record("only \(distinct.count) of \(count) distinct events within 30 s", sourceLocation: sourceLocation)
            }
        }

        var all: [(event: String, replica: String)] { state.withLock { $0.calls } }
    }

    struct CountingSink: Sink {
        static let typeName = "counting"
        struct Configuration: Decodable, Sendable {}
        let calls: Calls
        let replica: String

        /// Not built from a configuration: the test makes it with its recorder.
        init(name: String, configuration: Configuration, context: SinkContext) throws { throw NotConfigurable() }
        struct NotConfigurable: Error {}
        init(calls: Calls, replica: String) {
            self.calls = calls
            self.replica = replica
        }

        func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
            calls.record(event.id, by: replica)
        }
    }

    static func engine(_ store: any StateStore, replica: ReplicaID, calls: Calls) -> DeliveryEngine {
        let sink = CountingSink(calls: calls, replica: replica.rawValue)
        let entry = DeliveryEngine.SinkEntry(
            configuration: ConfiguredSink(
                name: "s", type: CountingSink.typeName, retry: .default, concurrency: 2,
                factory: SinkFactory(defaultConcurrency: 1) { _ in sink }),
            sink: sink)
        return DeliveryEngine(
            store: store, router: Router(routes: [Route(matcher: nil, sinks: ["s"])]), sinks: [entry], replica: replica, logger: quietLogger)
    }

    @Test("events journaled through either replica are each delivered once", arguments: StoreKind.shared)
    func deliveredOnce(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let calls = Calls()
            let (a, b) = (ReplicaID("engine-a"), ReplicaID("engine-b"))
            let engines = [Self.engine(first, replica: a, calls: calls), Self.engine(second, replica: b, calls: calls)]
            let running = engines.map { engine in Task { try await engine.run() } }
            let events = (0..<120).map { makeEvent(at: Date().addingTimeInterval(Double($0) / 1000)) }
            for (index, batch) in stride(from: 0, to: events.count, by: 10).map({ Array(events[$0..<$0 + 10]) }).enumerated() {
                let (store, replica, engine) = index % 2 == 0 ? (first, a, engines[0]) : (second, b, engines[1])
                _ = try await store.journal(batch.map { JournalEntry(event: $0, deduplicationKey: nil, replica: replica) })
                engine.journalDoorbell.ring()
            }
            await calls.waitForDistinct(events.count)
            let all = calls.all
            #expect(all.count == events.count, "an event was delivered twice")
            #expect(Set(all.map(\.event)) == Set(events.map(\.id)))
            for task in running { task.cancel() }
            for task in running { _ = try? await task.value }
        }
    }
}
