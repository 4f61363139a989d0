@testable import BridgeCore
import BridgeStore
import Foundation
import Testing
import TestSupport

@Suite("Routing yields to a saturated listener", .timeLimit(.minutes(1)))
struct BurstYieldTests {
    /// A dispatcher with batches of 10 over a fresh store; `waiting` is the work the backlog says waits.
    static func dispatcher(load: ListenerLoad, limit: Int? = nil, waiting: Int, burstYield: Duration) throws -> (Dispatcher, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let backlog = Backlog(limit: limit)
        backlog.journaled(waiting)
        let dispatcher = Dispatcher(
            store: store, router: EngineTests.everythingTo(["sink"]), enricher: NoEnrichment(), doorbell: Doorbell(), sinkDoorbells: [:],
            backlog: backlog, listenerLoad: load, burstYield: burstYield, logger: quietLogger, batchSize: 10)
        return (dispatcher, directory)
    }

    static func saturated() -> ListenerLoad {
        let load = ListenerLoad(saturation: 0)
        load.enter()
        return load
    }

    static func timed(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return ContinuousClock.now - start
    }

    @Test("a listener that is not saturated costs routing no wait, however much waits")
    func idle() async throws {
        let load = ListenerLoad(saturation: 2)
        load.enter()
        load.enter()
        #expect(!load.isSaturated)
        let (dispatcher, _) = try Self.dispatcher(load: load, waiting: 1000, burstYield: .seconds(5))
        #expect(await Self.timed { await dispatcher.yieldToBurst() } < .seconds(5))
    }

    @Test("a bridge that keeps up never waits, even with the listener saturated (a slow disk keeps requests in flight)")
    func keepingUp() async throws {
        let (dispatcher, _) = try Self.dispatcher(load: Self.saturated(), waiting: 10, burstYield: .seconds(5))
        #expect(await Self.timed { await dispatcher.yieldToBurst() } < .seconds(5))
    }

    @Test("behind, with the listener saturated, routing waits for burstYield, and no longer")
    func bounded() async throws {
        let (dispatcher, _) = try Self.dispatcher(load: Self.saturated(), waiting: 1000, burstYield: .milliseconds(300))
        let waited = await Self.timed { await dispatcher.yieldToBurst() }
        #expect(waited >= .milliseconds(300))
        #expect(waited < .seconds(30), "the wait is bounded by burstYield, whatever the load")
    }

    @Test("the wait ends as soon as the burst does")
    func endsWithTheBurst() async throws {
        let load = Self.saturated()
        let (dispatcher, _) = try Self.dispatcher(load: load, waiting: 1000, burstYield: .seconds(20))
        let waited = await Self.timed {
            async let yielded: Void = dispatcher.yieldToBurst()
            try? await Task.sleep(for: .milliseconds(50))
            load.leave()
            await yielded
        }
        #expect(waited < .seconds(20))
    }

    @Test("past half of the backlog limit routing does not wait: the queue needs the CPU")
    func backlogFirst() async throws {
        let (dispatcher, _) = try Self.dispatcher(load: Self.saturated(), limit: 1000, waiting: 500, burstYield: .seconds(20))
        #expect(await Self.timed { await dispatcher.yieldToBurst() } < .seconds(20))
    }

    @Test("under a burst that never ends, routing goes on: a wait before each batch while behind, none once caught up")
    func neverStarves() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let doorbell = Doorbell()
        let backlog = Backlog(limit: nil)
        let dispatcher = Dispatcher(
            store: store, router: EngineTests.everythingTo([]), enricher: NoEnrichment(), doorbell: doorbell, sinkDoorbells: [:],
            backlog: backlog, listenerLoad: Self.saturated(), burstYield: .milliseconds(100), logger: quietLogger, batchSize: 10)
        _ = try await store.journal((0..<50).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
        backlog.journaled(50)
        let start = ContinuousClock.now
        let task = Task { await dispatcher.run() }
        doorbell.ring()
        #expect(try await eventually { try await store.unroutedCount() == 0 })
        let elapsed = ContinuousClock.now - start
        dispatcher.stop()
        await task.value
        // 50, 40, 30 and 20 waiting are more than a batch: four waits; 10 is not.
        #expect(elapsed >= .milliseconds(400))
        #expect(backlog.total == 0)
    }
}
