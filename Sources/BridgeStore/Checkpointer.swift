import Dispatch
import GRDB
import Logging
import Synchronization

/// Copies the WAL back into the database file from a connection of its own, so the writer never
/// does it. SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages: the
/// group committer's thread then copies megabytes and fsyncs the database file while every
/// waiting `POST` waits with it. A PASSIVE checkpoint here runs beside the writer (it takes no
/// write lock); once it has caught up, the writer's next transaction starts the WAL from its
/// beginning again, so the file stops growing and its fsyncs overwrite blocks in place.
final class Checkpointer: Sendable {
    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "graph-bridge.state.checkpoint", qos: .utility)
    private let interval: DispatchTimeInterval
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)

    init(path: String, interval: DispatchTimeInterval = .milliseconds(200), logger: Logger) throws {
        var configuration = Configuration()
        configuration.label = "graph-bridge.state.checkpoint"
        configuration.busyMode = .timeout(1)
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.interval = interval
        self.logger = logger
    }

    func start() {
        schedule()
    }

    /// No checkpoint starts after this returns (one under way finishes).
    func stop() {
        stopped.store(true, ordering: .releasing)
        queue.sync {}
    }

    private func schedule() {
        queue.asyncAfter(deadline: .now() + interval) { [weak self] in
            guard let self, !self.stopped.load(ordering: .acquiring) else { return }
            self.checkpoint()
            self.schedule()
        }
    }

    /// One PASSIVE checkpoint now, on the checkpoint queue: the WAL's frames and how many of them
    /// are in the database file afterwards.
    func checkpointNow() throws -> (walFrames: Int, copied: Int) {
        try queue.sync { try passiveCheckpoint() }
    }

    private func passiveCheckpoint() throws -> (walFrames: Int, copied: Int) {
        let result = try connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        return (result.walFrameCount, result.checkpointedFrameCount)
    }

    private func checkpoint() {
        do {
            _ = try passiveCheckpoint()
        } catch {
            // Busy or failing I/O: the WAL keeps the data; the next round tries again.
            logger.debug("WAL checkpoint did not run", metadata: ["error": "\(error)"])
        }
    }
}
