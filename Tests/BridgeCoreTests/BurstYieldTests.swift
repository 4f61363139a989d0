@testable import BridgeCore
import BridgeStore
import Foundation
import Testing

@Suite("Routing yields to a saturated listener", .timeLimit(.minutes(1)))
struct BurstYieldTests {
    static func dispatcher(load: ListenerLoad, backlog: Backlog = Backlog(limit: nil), burstYield: Duration) throws -> (Dispatcher, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let dispatcher = Dispatcher(
            store: store, router: EngineTests.everythingTo(["sink"]), enricher: NoEnrichment(), doorbell: Doorbell(), sinkDoorbells: [:],
            backlog: backlog, listenerLoad: load, burstYield: burstYield, logger: quietLogger)
        return (dispatcher, directory)
    }

    static func timed(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return ContinuousClock.now - start
    }

    @Test("an idle listener costs routing no wait")
    func idle() async throws {
        let load = ListenerLoad(saturation: 2)
        load.enter()
        load.enter()
        #expect(!load.isSaturated)
        let (dispatcher, _) = try Self.dispatcher(load: load, burstYield: .seconds(5))
        #expect(await Self.timed { await dispatcher.yieldToBurst() } < .seconds(5))
    }

    @Test("a saturated listener holds routing back for burstYield, and no longer")
    func bounded() async throws {
        let load = ListenerLoad(saturation: 0)
        load.enter()
        #expect(load.isSaturated)
        let (dispatcher, _) = try Self.dispatcher(load: load, burstYield: .milliseconds(300))
        let waited = await Self.timed { await dispatcher.yieldToBurst() }
        #expect(waited >= .milliseconds(300))
        #expect(waited < .seconds(30), "the wait is bounded by burstYield, whatever the load")
    }

    @Test("the wait ends as soon as the burst does")
    func endsWithTheBurst() async throws {
        let load = ListenerLoad(saturation: 0)
        load.enter()
        let (dispatcher, _) = try Self.dispatcher(load: load, burstYield: .seconds(20))
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
        let load = ListenerLoad(saturation: 0)
        load.enter()
        let backlog = Backlog(limit: 10)
        backlog.journaled(5)
        let (dispatcher, _) = try Self.dispatcher(load: load, backlog: backlog, burstYield: .seconds(20))
        #expect(await Self.timed { await dispatcher.yieldToBurst() } < .seconds(20))
    }

    @Test("routing that is behind waits for a saturated listener before each full batch; routing that keeps up never waits")
    func onlyWhenBehind() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let load = ListenerLoad(saturation: 0)
        load.enter()
        let doorbell = Doorbell()
        func dispatcher(burstYield: Duration) -> Dispatcher {
            Dispatcher(
                store: store, router: EngineTests.everythingTo([]), enricher: NoEnrichment(), doorbell: doorbell, sinkDoorbells: [:],
                backlog: Backlog(limit: nil), listenerLoad: load, burstYield: burstYield, logger: quietLogger, batchSize: 10)
        }
        func routeAll(_ dispatcher: Dispatcher) async throws -> Duration {
            let start = ContinuousClock.now
            let task = Task { await dispatcher.run() }
            doorbell.ring()
            #expect(try await eventually { try await store.unroutedCount() == 0 })
            let elapsed = ContinuousClock.now - start
            dispatcher.stop()
            await task.value
            return elapsed
        }
        // Behind: 50 events are five full batches of 10, each after a 100 ms wait.
        _ = try await store.journal((0..<50).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
        #expect(try await routeAll(dispatcher(burstYield: .milliseconds(100))) >= .milliseconds(500))
        // Keeping up: 3 events are less than a batch and go at once, however long the wait could be.
        _ = try await store.journal((0..<3).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
        #expect(try await routeAll(dispatcher(burstYield: .seconds(60))) < .seconds(30))
    }
}
