public import Foundation
public import Logging
import Metrics
public import ServiceLifecycle

/// Everything after the journal: the dispatcher that routes journaled events, one worker per sink,
/// and housekeeping (pruning, queue gauges). A `Service`: on graceful shutdown it stops taking
/// work and gives deliveries in flight a grace period; what is unfinished stays queued on disk.
///
/// The engine is one replica of the store (``replica``): it registers a lease before it claims
/// anything, renews it every third of `lease` (one write extends every claim it holds), and
/// releases it when it stops, so other replicas (or the next start) take its deliveries and
/// unrouted events at once. A replica killed without a stop holds them until its lease lapses.
public final class DeliveryEngine: Service {
    /// One configured sink with its built instance.
    public struct SinkEntry: Sendable {
        public var configuration: ConfiguredSink
        public var sink: any Sink

        public init(configuration: ConfiguredSink, sink: any Sink) {
            self.configuration = configuration
            self.sink = sink
        }
    }

    let store: any StateStore
    /// This process in the store: stamp it on journal entries (``NotificationIntake``).
    public let replica: ReplicaID
    /// How long the replica stays alive without a renewal.
    public let lease: Duration
    let clock: any Clock<Duration>
    let wallClock: @Sendable () -> Date
    let dispatcher: Dispatcher
    let workers: [SinkWorker]
    let retention: Duration
    let logger: Logger
    /// Rung by the intake after each journal commit. Given from outside when the intake outlives
    /// the engine (a configuration reload replaces the engine, the intake keeps answering Graph).
    public let journalDoorbell: Doorbell
    /// What waits, shared with the intake (which refuses work beyond its limit).
    public let backlog: Backlog
    /// Requests the intake is handling, counted by it (give it to `NotificationIntake`): routing
    /// yields to a saturated listener for at most `burstYield` per batch.
    public let listenerLoad: ListenerLoad

    public init(
        store: any StateStore,
        router: Router,
        sinks: [SinkEntry],
        enricher: any EventEnricher = NoEnrichment(),
        retention: Duration = .seconds(3600),
        shutdownGrace: Duration = .seconds(5),
        backlog: Backlog = Backlog(limit: nil),
        listenerLoad: ListenerLoad = ListenerLoad(),
        burstYield: Duration = .milliseconds(100),
        journalDoorbell: Doorbell = Doorbell(),
        replica: ReplicaID = .random(),
        lease: Duration = .seconds(30),
        clock: any Clock<Duration> = ContinuousClock(),
        wallClock: @escaping @Sendable () -> Date = Date.init,
        logger: Logger,
        activity: (any ActivityObserver)? = nil
    ) {
        self.store = store
        self.replica = replica
        self.lease = lease
        self.clock = clock
        self.wallClock = wallClock
        self.listenerLoad = listenerLoad
        self.backlog = backlog
        self.retention = retention
        self.logger = logger
        self.workers = sinks.map { entry in
            SinkWorker(
                name: entry.configuration.name,
                sink: entry.sink,
                store: store,
                retry: entry.configuration.retry,
                concurrency: entry.configuration.concurrency,
                logger: logger,
                shutdownGrace: shutdownGrace,
                backlog: backlog,
                replica: replica,
                clock: clock,
                wallClock: wallClock,
                activity: activity
            )
        }
        let doorbell = journalDoorbell
        self.journalDoorbell = doorbell
        self.dispatcher = Dispatcher(
            store: store,
            router: router,
            enricher: enricher,
            doorbell: doorbell,
            sinkDoorbells: Dictionary(uniqueKeysWithValues: workers.map { ($0.name, $0.doorbell) }),
            backlog: backlog,
            listenerLoad: listenerLoad,
            burstYield: burstYield,
            logger: logger,
            replica: replica,
            adoptionInterval: lease / 3,
            clock: clock,
            wallClock: wallClock,
            activity: activity
        )
    }

    public func run() async throws {
        let housekeeping = Doorbell()
        let leaseStop = Doorbell()
        await withGracefulShutdownHandler {
            guard await register(until: housekeeping) else { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.dispatcher.run() }
                for worker in workers {
                    group.addTask { await worker.run() }
                }
                group.addTask { await self.housekeep(until: housekeeping) }
                group.addTask { await self.renewLease(until: leaseStop) }
                await group.waitForAll()
            }
            do {
                try await store.releaseReplica(replica)
            } catch {
                logger.warning("could not release this replica's claims; they lapse with its lease", metadata: ["error": "\(error)"])
            }
        } onGracefulShutdown: {
            self.logger.info("delivery engine stopping")
            self.dispatcher.stop()
            for worker in self.workers { worker.stop() }
            housekeeping.ring()
            leaseStop.ring()
        }
    }

    /// Registers the replica's lease, trying again while the store refuses; false: stopped first.
    private func register(until stop: Doorbell) async -> Bool {
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await store.registerReplica(replica, now: wallClock(), lease: lease)
                logger.info("delivery engine started", metadata: ["bridge.replica": "\(replica)"])
                return true
            } catch is CancellationError {
                return false
            } catch {
                failures += 1
                logger.error("registering this replica in the state store failed; will retry", metadata: ["error": "\(error)"])
                await stop.wait(timeout: .milliseconds(min(5_000, 100 << min(failures, 6))), clock: clock)
            }
        }
        return false
    }

    /// Every third of the lease: extends it, and with it every claim this replica holds.
    private func renewLease(until stop: Doorbell) async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await stop.wait(timeout: lease / 3, clock: clock)
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            do {
                if try await store.renewLease(replica, now: wallClock(), lease: lease) == false {
                    logger.warning("this replica's lease had lapsed: other replicas may have taken its deliveries and events (some may be delivered twice)", metadata: ["bridge.replica": "\(replica)"])
                }
            } catch is CancellationError {
                break
            } catch {
                logger.error("renewing this replica's lease failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Every few seconds: queue gauges; every minute: prune delivered events and expired dedup keys.
    private func housekeep(until stop: Doorbell) async {
        var lastPrune = Date.distantPast
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let depths = try await store.queueDepths()
                backlog.resynchronise(unrouted: try await store.unroutedCount(), pending: depths.values.reduce(0) { $0 + $1.pending })
                for worker in workers {
                    let depth = depths[worker.name] ?? QueueDepth(pending: 0, dead: 0)
                    Gauge(label: "graph_bridge_queue_depth", dimensions: [("sink", worker.name)]).record(depth.pending)
                    Gauge(label: "graph_bridge_dead_letters", dimensions: [("sink", worker.name)]).record(depth.dead)
                }
                if wallClock().timeIntervalSince(lastPrune) >= 60 {
                    let now = wallClock()
                    try await store.prune(
                        deliveredBefore: now.addingTimeInterval(-retention.seconds),
                        deduplicationBefore: now.addingTimeInterval(-Self.deduplicationWindow.seconds)
                    )
                    lastPrune = now
                }
            } catch is CancellationError {
                break  // the bridge is stopping (or a service failed to start)
            } catch {
                logger.warning("housekeeping failed", metadata: ["error": "\(error)"])
            }
            await stop.wait(timeout: .seconds(5), clock: clock)
        }
    }

    /// Graph retries a notification for up to 4 hours; a change seen again within this window is a duplicate.
    public static let deduplicationWindow: Duration = .seconds(4 * 3600)
}
