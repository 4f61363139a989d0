import BridgeCore
import BridgeGraph
import BridgeSettings
import Synchronization

/// The running generation as the long-lived parts see it: the intake hands lifecycle events to its
/// subscription manager (on SQLite; on PostgreSQL the leader reads them from the journal, see
/// ``ReplicaRoles``), `/healthz` and `/readyz` ask whether its subscriptions are looked after, the
/// status page lists its sinks.
///
/// Between two generations (a reload stopped the old one and has not started the new one) lifecycle
/// events are held and given to the next manager, so a `reauthorizationRequired` that Graph sends
/// during a reload is still acted on. (The events themselves are journaled and routed either way.)
final class CurrentGeneration: LifecycleObserver, DirectoryRefresher {
    private struct State {
        var lifecycleObserver: (any LifecycleObserver)?
        var sync: DirectorySync?
        var upkeep: (any UpkeepReadiness)?
        var managedNames: [String] = []
        var sinkNames: [String] = []
        /// Lifecycle events journaled while no generation runs.
        var held: [BridgeEvent] = []
        var running = false
    }

    private let state = Mutex(State())

    /// Whether the running generation's subscriptions are looked after (its manager, or on a
    /// PostgreSQL follower the shared records read); nil when it has no manager (no managed subscription).
    var upkeep: (any UpkeepReadiness)? { state.withLock { $0.upkeep } }
    /// The managed subscriptions of the running configuration.
    var managedNames: [String] { state.withLock { $0.managedNames } }
    /// The sinks of the running configuration, in file order.
    var sinkNames: [String] { state.withLock { $0.sinkNames } }

    /// `generation` runs from now on; lifecycle events held meanwhile go to its manager.
    func install(_ generation: BridgeGeneration) async {
        let held = state.withLock { state -> [BridgeEvent] in
            state.lifecycleObserver = generation.replicas.lifecycleObserver
            state.sync = generation.replicas.sync
            state.upkeep = generation.replicas.upkeep
            state.managedNames = generation.managedNames
            state.sinkNames = generation.configuration.sinks.map(\.name)
            state.running = true
            defer { state.held = [] }
            return state.held
        }
        if !held.isEmpty { await generation.replicas.lifecycleObserver?.lifecycleEventsJournaled(held) }
    }

    /// The running generation is stopping: lifecycle events are held for the next one.
    func pause() {
        state.withLock { $0.running = false }
    }

    func lifecycleEventsJournaled(_ events: [BridgeEvent]) async {
        let observer = state.withLock { state -> (any LifecycleObserver)? in
            guard state.running else {
                state.held.append(contentsOf: events)
                return nil
            }
            return state.lifecycleObserver
        }
        await observer?.lifecycleEventsJournaled(events)
    }

    /// On PostgreSQL, the running generation's directory reads the shared records now; elsewhere nothing.
    func refreshDirectory() async {
        await state.withLock { $0.sync }?.refreshNow()
    }
}
