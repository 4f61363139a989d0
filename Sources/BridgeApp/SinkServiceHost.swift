import BridgeCore
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the sinks' own services (an exec sink's plugin process), each in a service group of its
/// own, so a reload can stop and start one sink's service and leave the others running: a sink
/// whose keys a reload does not change keeps its instance, and its plugin process with it.
///
/// A service of the bridge's outer group, before the generation's supervisor: at SIGTERM it is
/// stopped after the delivery engine, and then stops every sink's service together (one after
/// another, several slow plugins could exceed the 10 s promise).
final class SinkServiceHost: Service {
    /// One sink's service, running or about to.
    private final class Hosted: Sendable {
        let group: ServiceGroup
        let finished = Doorbell()
        private let done = Atomic<Bool>(false)

        init(group: ServiceGroup) { self.group = group }

        var isDone: Bool { done.load(ordering: .relaxed) }

        func markDone() {
            done.store(true, ordering: .relaxed)
            finished.ring()
        }
    }

    private let logger: Logger
    private let starts: AsyncStream<Hosted>
    private let startsContinuation: AsyncStream<Hosted>.Continuation
    /// The running services by sink name.
    private let hosted = Mutex<[String: Hosted]>([:])

    init(logger: Logger) {
        self.logger = logger
        (starts, startsContinuation) = AsyncStream.makeStream()
    }

    /// Starts `service` for the sink `name` (its previous service, if any, must be stopped first).
    func start(_ name: String, _ service: any Service) {
        let entry = Hosted(group: ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger)))
        hosted.withLock { $0[name] = entry }
        startsContinuation.yield(entry)
    }

    /// Stops the service of the sink `name` gracefully and returns once it has ended.
    func stop(_ name: String) async {
        guard let entry = hosted.withLock({ $0.removeValue(forKey: name) }) else { return }
        await entry.group.triggerGracefulShutdown()
        while !entry.isDone && !Task.isCancelled {
            await entry.finished.wait(timeout: .seconds(1))
        }
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { tasks in
            // Until the bridge stops: each sink's group then sees the shutdown too (it runs in
            // this service's task) and stops its service.
            for await entry in starts.cancelOnGracefulShutdown() {
                tasks.addTask {
                    defer { entry.markDone() }
                    try await entry.group.run()
                }
            }
        }
    }
}
