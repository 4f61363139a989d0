import Foundation
import Logging
import Metrics
import Synchronization

/// Takes journaled events in order, completes them (enrichment), routes them, and records their
/// deliveries, all in one transaction per batch. Crash-safe: an event is routed exactly when its
/// deliveries exist.
///
/// Enrichment (``EventEnricher``: `fetch:`, rich notifications) never holds routing up: each event
/// is enriched in its own task, and events go through in *lanes*, one per subscription (its
/// lifecycle events in a lane of their own). A lane routes its events in arrival order, each once
/// it and every earlier event of the lane are enriched; lanes do not wait for each other, so a
/// slow or throttled mailbox delays only its own subscription. Routing is committed per ready
/// lane prefix, out of arrival order across lanes (``StateStore/commitRouting(_:)``): an event
/// still waiting for its fetch stays journaled and unrouted, so a crash loses nothing. At most
/// `enrichmentWindow` events wait at once, and at most `laneWindow` of one lane; a lane past it
/// is read again from the first event it left behind once it has drained to half.
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
///
/// Replicas sharing a store: each dispatcher routes the events its replica journaled (and those
/// journaled without a replica), and every `adoptionInterval` it adopts the unrouted events of
/// replicas whose lease has lapsed (``StateStore/adoptUnroutedEvents(replica:now:)``), reading
/// again from the start since those are older than what it holds. Should two dispatchers commit
/// the same event, the store routes it once.
final class Dispatcher: Sendable {
    let store: any StateStore
    let replica: ReplicaID
    let clock: any Clock<Duration>
    let wallClock: @Sendable () -> Date
    /// How often the unrouted events of lapsed replicas are looked for.
    let adoptionInterval: Duration
    let router: Router
    let enricher: any EventEnricher
    let doorbell: Doorbell
    let sinkDoorbells: [String: Doorbell]
    let backlog: Backlog
    let logger: Logger
    let batchSize: Int
    let listenerLoad: ListenerLoad
    let burstYield: Duration
    /// How many events may be held for enrichment at once.
    let enrichmentWindow: Int
    /// How many events of one lane may be held at once.
    let laneWindow: Int
    /// Told of every event routed (the admin listener's `/events`).
    let activity: (any ActivityObserver)?
    private let stopping = Atomic<Bool>(false)

    init(store: any StateStore, router: Router, enricher: any EventEnricher, doorbell: Doorbell, sinkDoorbells: [String: Doorbell], backlog: Backlog,
         listenerLoad: ListenerLoad = ListenerLoad(), burstYield: Duration = .milliseconds(100), logger: Logger, batchSize: Int = 256,
         enrichmentWindow: Int = 4096, laneWindow: Int = 512, replica: ReplicaID = ReplicaID("local"), adoptionInterval: Duration = .seconds(10),
         clock: any Clock<Duration> = ContinuousClock(), wallClock: @escaping @Sendable () -> Date = Date.init,
         activity: (any ActivityObserver)? = nil) {
        self.activity = activity
        self.replica = replica
        self.adoptionInterval = adoptionInterval
        self.clock = clock
        self.wallClock = wallClock
        self.enrichmentWindow = max(1, enrichmentWindow)
        self.laneWindow = max(1, min(laneWindow, enrichmentWindow))
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
    }

    func run() async {
        if enricher is NoEnrichment {
            await runInOrder()
        } else {
            await runInLanes()
        }
    }

    /// Without enrichment: batches of the oldest unrouted events, routed and committed in order.
    func runInOrder() async {
        var failures = 0
        var nextAdoption = Date.distantPast
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            do {
                // Reads start from the oldest each time, so adopted events need no rewind.
                _ = try await adoptIfDue(&nextAdoption)
                await yieldToBurst()
                let batch = try await store.unroutedEvents(for: replica, after: 0, limit: batchSize)
                if batch.isEmpty {
                    await doorbell.wait(timeout: min(.seconds(10), adoptionInterval), clock: clock)
                    continue
                }
                try await commit(batch.map { route($0, as: $0.event) })
                failures = 0
            } catch is CancellationError {
                break  // the bridge is stopping (or a service failed to start)
            } catch {
                failures += 1
                logger.error("routing journaled events failed; will retry", metadata: ["error": "\(error)"])
                await doorbell.wait(timeout: .milliseconds(min(5_000, 100 << min(failures, 6))), clock: clock)
            }
        }
    }

    /// Adopts the unrouted events of lapsed replicas when `adoptionInterval` has passed since the
    /// last look; returns whether any were adopted.
    func adoptIfDue(_ next: inout Date) async throws -> Bool {
        let now = wallClock()
        guard now >= next else { return false }
        let adopted = try await store.adoptUnroutedEvents(replica: replica, now: now)
        next = now.addingTimeInterval(adoptionInterval.seconds)
        if adopted > 0 {
            logger.notice("adopted the unrouted events of replicas whose lease lapsed", metadata: ["bridge.count": "\(adopted)"])
        }
        return adopted > 0
    }

    /// Waits while the listener is saturated and the bridge behind, at most `burstYield` (see the
    /// type's documentation).
    func yieldToBurst() async {
        var waited = Duration.zero
        while waited < burstYield, listenerLoad.isSaturated, backlog.total > batchSize, !stopping.load(ordering: .relaxed), !backlogPastHalf {
            try? await clock.sleep(for: .milliseconds(5))
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

    /// Routes `pending` in its enriched form; nil (the enricher refused it) marks it routed with no
    /// deliveries (its stored form stays as journaled).
    func route(_ pending: PendingEvent, as event: BridgeEvent?) -> RoutedEvent {
        guard let event else {
            return RoutedEvent(sequence: pending.sequence, event: pending.event, changed: false, sinks: [], dropped: true)
        }
        return RoutedEvent(sequence: pending.sequence, event: event, changed: event != pending.event, sinks: router.route(event).sinks)
    }

    /// Records `routed` in the store, then counts what this call routed (not what another replica
    /// routed first) and wakes the sinks it reaches.
    func commit(_ routed: [RoutedEvent]) async throws {
        let done = try await store.commitRouting(routed, now: wallClock())
        let routed = routed.filter { done.contains($0.sequence) }
        backlog.routed(events: routed.count, deliveries: routed.reduce(0) { $0 + $1.sinks.count })
        var touched: Set<String> = []
        for event in routed {
            activity?.record(.routed(event.event, sinks: event.sinks, dropped: event.dropped))
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
    }

    /// With enrichment: events in lanes (see the type's documentation). Each event's enrichment is
    /// a child task; stopping cancels them, and what they would have routed stays journaled and
    /// unrouted, routed at the next start.
    func runInLanes() async {
        let finished = EnrichedEvents()
        await withDiscardingTaskGroup { group in
            var lanes = LaneTable(window: enrichmentWindow, laneWindow: laneWindow)
            var failures = 0
            var nextAdoption = Date.distantPast
            while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                do {
                    var readAny = false
                    if try await adoptIfDue(&nextAdoption) { lanes.rewind() }
                    if lanes.room > 0 {
                        await yieldToBurst()
                        let fresh = try await store.unroutedEvents(for: replica, after: lanes.readThrough, limit: min(batchSize, lanes.room))
                        readAny = !fresh.isEmpty
                        for pending in fresh where lanes.admit(pending, lane: Self.lane(of: pending.event)) {
                            group.addTask {
                                let event = await self.enricher.enrich(pending)
                                // Cancelled: the bridge is stopping; what the enricher gave up on stays unrouted.
                                if Task.isCancelled { return }
                                finished.store(event, for: pending.sequence)
                                self.doorbell.ring()
                            }
                        }
                    }
                    let ready = lanes.takeReady(finished.takeAll())
                    if !ready.isEmpty {
                        do {
                            try await commit(ready.map { route($0.pending, as: $0.event) })
                        } catch {
                            lanes.putBack(ready)
                            throw error
                        }
                        lanes.committed(ready)
                    }
                    failures = 0
                    if ready.isEmpty && !readAny {
                        await doorbell.wait(timeout: min(.seconds(10), adoptionInterval), clock: clock)
                    }
                } catch is CancellationError {
                    break  // the bridge is stopping (or a service failed to start)
                } catch {
                    failures += 1
                    logger.error("routing journaled events failed; will retry", metadata: ["error": "\(error)"])
                    await doorbell.wait(timeout: .milliseconds(min(5_000, 100 << min(failures, 6))), clock: clock)
                }
            }
            group.cancelAll()
        }
    }

    /// The lane an event goes through: its subscription, its lifecycle events apart.
    static func lane(of event: BridgeEvent) -> String {
        event.isLifecycle ? "lifecycle\u{0}" + event.subscription.name : event.subscription.name
    }
}

/// Enrichment results, handed from the enrichment tasks to the dispatcher's loop.
final class EnrichedEvents: Sendable {
    /// Sequence number to the enriched event (nil inside: the enricher refused it).
    private let results = Mutex<[Int64: BridgeEvent?]>([:])

    func store(_ event: BridgeEvent?, for sequence: Int64) {
        results.withLock { $0[sequence] = .some(event) }
    }

    func takeAll() -> [Int64: BridgeEvent?] {
        results.withLock { results in
            defer { results.removeAll(keepingCapacity: true) }
            return results
        }
    }
}

/// The dispatcher's lanes: which events it holds, in which order each lane must route them, and
/// where to read on. A value the loop owns; tested without I/O.
struct LaneTable {
    struct Ready {
        var pending: PendingEvent
        var event: BridgeEvent?
        var lane: String
    }

    private struct Lane {
        var waiting: [PendingEvent] = []
        var head = 0
        /// The first event of this lane not taken in (the lane was full); read again from there.
        var leftBehind: Int64?
        var count: Int { waiting.count - head }
    }

    let window: Int
    let laneWindow: Int
    private var lanes: [String: Lane] = [:]
    private var results: [Int64: BridgeEvent?] = [:]
    /// The events taken in and not yet routed.
    private var heldSequences: Set<Int64> = []
    var held: Int { heldSequences.count }
    /// The highest sequence number read: the store is read on after it.
    private(set) var readThrough: Int64 = 0

    init(window: Int, laneWindow: Int) {
        self.window = window
        self.laneWindow = laneWindow
    }

    /// How many more events may be taken in.
    var room: Int { max(0, window - held) }

    /// Takes `pending` into `lane`, or leaves it in the store when the lane is full or already left
    /// an earlier event behind (its order must hold); returns whether it was taken.
    mutating func admit(_ pending: PendingEvent, lane name: String) -> Bool {
        readThrough = max(readThrough, pending.sequence)
        if heldSequences.contains(pending.sequence) { return false }  // read again after a rewind
        var lane = lanes[name] ?? Lane()
        defer { lanes[name] = lane }
        if lane.leftBehind != nil || lane.count >= laneWindow || held >= window {
            lane.leftBehind = min(lane.leftBehind ?? pending.sequence, pending.sequence)
            return false
        }
        lane.waiting.append(pending)
        heldSequences.insert(pending.sequence)
        return true
    }

    /// Records `finished` results and takes out every lane's enriched prefix, in lane order.
    mutating func takeReady(_ finished: [Int64: BridgeEvent?]) -> [Ready] {
        results.merge(finished) { _, new in new }
        guard !results.isEmpty else { return [] }
        var ready: [Ready] = []
        for name in lanes.keys {
            guard var lane = lanes[name] else { continue }
            while lane.head < lane.waiting.count, let event = results.removeValue(forKey: lane.waiting[lane.head].sequence) {
                ready.append(Ready(pending: lane.waiting[lane.head], event: event, lane: name))
                lane.head += 1
            }
            lanes[name] = lane
        }
        return ready
    }

    /// Reads again from the first event: adopted events are older than what was read.
    mutating func rewind() {
        readThrough = 0
    }

    /// `ready` could not be committed: it goes back to the head of its lanes, to be taken again.
    mutating func putBack(_ ready: [Ready]) {
        for item in ready.reversed() {
            lanes[item.lane]?.head -= 1
            results[item.pending.sequence] = .some(item.event)
        }
    }

    /// `ready` is routed: drops it, and sends reading back to where a lane left events behind
    /// once that lane has room again.
    mutating func committed(_ ready: [Ready]) {
        heldSequences.subtract(ready.map(\.pending.sequence))
        for name in Set(ready.map(\.lane)) {
            guard var lane = lanes[name] else { continue }
            lane.waiting.removeFirst(lane.head)
            lane.head = 0
            if let behind = lane.leftBehind, lane.count * 2 <= laneWindow {
                readThrough = min(readThrough, behind - 1)
                lane.leftBehind = nil
            }
            lanes[name] = lane.count == 0 && lane.leftBehind == nil ? nil : lane
        }
        if room * 2 >= window || room >= laneWindow {
            // Events left behind because the whole window was full are read again once it has room.
            for (name, lane) in lanes where lane.leftBehind != nil && lane.count * 2 <= laneWindow {
                readThrough = min(readThrough, lane.leftBehind! - 1)
                lanes[name]?.leftBehind = nil
            }
        }
    }
}
