import Foundation
import Logging
import Metrics
import Synchronization

/// Takes journaled events in order, completes them (enrichment), routes them, and records their
/// deliveries, all in one transaction per batch. Crash-safe: an event is routed exactly when its
/// deliveries exist.
///
/// Acknowledging comes first: while the listener is saturated and the bridge is behind (more than
/// a batch of work waits: unrouted events plus queued deliveries), the dispatcher waits in 5 ms
/// steps for up to `burstYield` before each batch, leaving the CPU to the requests (on two cores
/// routing and delivering a burst as it arrives takes a third of what could be acknowledged; it
/// is delivery more than routing, so holding routing back holds both). A bridge that keeps up
/// never waits, so a slow disk that keeps requests in flight longer adds no latency. The wait is
/// bounded, so routing never stops, and it is skipped once the backlog is past half of
/// `state.maxQueuedDeliveries`: then the queue, not the listener, needs the CPU, and waiting would
/// only bring the 503s closer.
final class Dispatcher: Sendable {
    let store: any StateStore
    let router: Router
    let enricher: any EventEnricher
    let doorbell: Doorbell
    let sinkDoorbells: [String: Doorbell]
    let backlog: Backlog
    let logger: Logger
    let batchSize: Int
    let listenerLoad: ListenerLoad
    let burstYield: Duration
    private let stopping = Atomic<Bool>(false)
    /// Rung by `stop()`: ends a routing whose enrichment still waits on Graph.
    private let stopBell = Doorbell()

    init(store: any StateStore, router: Router, enricher: any EventEnricher, doorbell: Doorbell, sinkDoorbells: [String: Doorbell], backlog: Backlog,
         listenerLoad: ListenerLoad = ListenerLoad(), burstYield: Duration = .milliseconds(100), logger: Logger, batchSize: Int = 256) {
        self.listenerLoad = listenerLoad
        self.burstYield = burstYield
        self.backlog = backlog
        self.store = store
        self.router = router
        self.enricher = enricher
        self.doorbell = doorbell
        self.sinkDoorbells = sinkDoorbells
        self.logger = logger
        self.batchSize = batchSize
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        doorbell.ring()
        stopBell.ring()
    }

    /// Routes `batch`, or returns nil when the bridge stops first. Enrichment reads Graph, which
    /// may not answer for longer than a stop may take (SIGTERM: exit within 10 s): it is
    /// cancelled then, and what it would have routed stays in the journal.
    func routeUnlessStopped(_ batch: [PendingEvent]) async -> [RoutedEvent]? {
        if enricher is NoEnrichment { return await route(batch) }
        return await withTaskGroup(of: [RoutedEvent]?.self) { group in
            group.addTask { await self.route(batch) }
            group.addTask {
                while !self.stopping.load(ordering: .relaxed) && !Task.isCancelled { await self.stopBell.wait(timeout: nil) }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    func run() async {
        var failures = 0
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            do {
                await yieldToBurst()
                let batch = try await store.unroutedEvents(limit: batchSize)
                if batch.isEmpty {
                    await doorbell.wait(timeout: .seconds(10))
                    continue
                }
                // nil: the bridge is stopping and the batch's enrichment was cancelled; it stays
                // journaled and unrouted, and is routed at the next start.
                guard let routed = await routeUnlessStopped(batch) else { break }
                try await store.commitRouting(routed)
                backlog.routed(events: routed.count, deliveries: routed.reduce(0) { $0 + $1.sinks.count })
                failures = 0
                var touched: Set<String> = []
                for event in routed {
                    touched.formUnion(event.sinks)
                    if event.dropped {
                        Counter(label: "graph_bridge_events_routed_total", dimensions: [("routed", "dropped")]).increment()
                        continue
                    }
                    Counter(label: "graph_bridge_events_routed_total", dimensions: [("routed", event.sinks.isEmpty ? "no_route" : "yes")]).increment()
                    if event.sinks.isEmpty {
                        logger.info("no route matched the event", metadata: ["bridge.event": "\(event.event.id)", "bridge.subscription": "\(event.event.subscription.name)"])
                    }
                }
                for sink in touched { sinkDoorbells[sink]?.ring() }
            } catch is CancellationError {
                break  // the bridge is stopping (or a service failed to start)
            } catch {
                failures += 1
                logger.error("routing journaled events failed; will retry", metadata: ["error": "\(error)"])
                await doorbell.wait(timeout: .milliseconds(min(5_000, 100 << min(failures, 6))))
            }
        }
    }

    /// Waits while the listener is saturated and the bridge behind, at most `burstYield` (see the
    /// type's documentation).
    func yieldToBurst() async {
        var waited = Duration.zero
        while waited < burstYield, listenerLoad.isSaturated, backlog.total > batchSize, !stopping.load(ordering: .relaxed), !backlogPastHalf {
            try? await Task.sleep(for: .milliseconds(5))
            waited += .milliseconds(5)
        }
        if waited > .zero {
            let seconds = Double(waited.components.seconds) + Double(waited.components.attoseconds) / 1e18
            FloatingPointCounter(label: "graph_bridge_routing_yield_seconds_total").increment(by: seconds)
        }
    }

    private var backlogPastHalf: Bool {
        guard let limit = backlog.limit else { return false }
        return backlog.total * 2 >= limit
    }

    /// Enriches up to 16 events at a time, keeping their order, then routes each. An event the
    /// enricher drops is marked routed with no deliveries (its stored form stays as journaled).
    func route(_ batch: [PendingEvent]) async -> [RoutedEvent] {
        var events = [BridgeEvent?](repeating: nil, count: batch.count)
        if enricher is NoEnrichment {
            events = batch.map(\.event)
        } else {
            await withTaskGroup(of: (Int, BridgeEvent?).self) { group in
                var next = 0
                func addNext() {
                    guard next < batch.count else { return }
                    let index = next
                    let pending = batch[index]
                    group.addTask { (index, await self.enricher.enrich(pending)) }
                    next += 1
                }
                for _ in 0..<16 { addNext() }
                while let (index, event) = await group.next() {
                    events[index] = event
                    addNext()
                }
            }
        }
        return zip(batch, events).map { pending, event in
            guard let event else {
                return RoutedEvent(sequence: pending.sequence, event: pending.event, changed: false, sinks: [], dropped: true)
            }
            return RoutedEvent(sequence: pending.sequence, event: event, changed: event != pending.event, sinks: router.route(event).sinks)
        }
    }
}
