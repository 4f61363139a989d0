import Dispatch
import Glibc
import GRDB
import Logging
import Synchronization

/// Copies the WAL back into the database file from a connection of its own, so the writer never
/// does it. SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages: the
/// group committer's thread then copies megabytes and fsyncs the database file while every
/// waiting `POST` waits with it. A PASSIVE checkpoint here runs beside the writer (it takes no
/// write lock); when it has caught up and no reader is in the WAL, the writer's next transaction
/// starts the WAL from its beginning again, so the file stops growing and its fsyncs overwrite
/// blocks in place (under steady traffic that needs help, see below).
///
/// A burst still grows the WAL (checkpoints cannot finish while it is being read), and SQLite
/// keeps the file at its largest. Cutting it back blocks writers while the file system frees the
/// blocks (about 200 ms for 500 MB here; SQLite's `journal_size_limit` does it inside the next
/// commit, which is where a benchmark found it). So it is done here, and only when the writer
/// has been idle for a whole interval: a WAL above `walSizeLimit`, fully copied, with no new
/// frame since the last round, is truncated with a TRUNCATE checkpoint that gives up at once if
/// a reader or writer is busy.
///
/// Under steady traffic a PASSIVE checkpoint never lets the WAL start over: the writer restarts it
/// only when every frame has been copied and no reader holds a snapshot in it, and with a commit
/// every few milliseconds and readers polling, that moment never comes (at 1,000 notifications/s
/// the WAL grew 40 MB/s, without end). So once the WAL holds more than `restartFrames`, a RESTART
/// checkpoint follows the PASSIVE one, on the writer's own connection, between two group commits:
/// it copies the few frames the PASSIVE round left and waits (20 ms at most, else it gives up
/// until the next round) for readers to leave the WAL; the next commit then writes from the
/// WAL's beginning again. (From this connection it first had to win the write lock from a writer
/// committing back to back, and SQLite's busy handler, polling with sleeps, missed every gap
/// often enough for the WAL to reach 12 MB in a test that stays under 5 MB now.)
final class Checkpointer: Sendable {
    private let connection: DatabaseQueue
    /// The store's pool: RESTART checkpoints run on its writer.
    private let writer: DatabasePool
    private let queue = DispatchQueue(label: "graph-bridge.state.checkpoint", qos: .utility)
    /// Time between rounds; nil: rounds run only when `round()` is called (tests drive them).
    private let interval: DispatchTimeInterval?
    private let walPath: String
    private let walSizeLimit: Int
    private let restartFrames: Int
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    /// The WAL's frame count after the previous round (-1: none yet); only the queue touches it.
    private let previousFrames = Mutex(-1)

    init(path: String, writer: DatabasePool, walSizeLimit: Int, restartFrames: Int = 8192, interval: DispatchTimeInterval? = .milliseconds(200), logger: Logger) throws {
        var configuration = Configuration()
        configuration.label = "graph-bridge.state.checkpoint"
        configuration.busyMode = .timeout(1)
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.writer = writer
        self.interval = interval
        self.walPath = path + "-wal"
        self.walSizeLimit = walSizeLimit
        self.restartFrames = restartFrames
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

    /// One round now, on the checkpoint queue, as the timer runs it: a PASSIVE checkpoint, then a
    /// TRUNCATE when the store was quiet since the last round, or a RESTART past `restartFrames`.
    func round() {
        queue.sync { checkpoint() }
    }

    private func schedule() {
        guard let interval else { return }
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
            let result = try passiveCheckpoint()
            let quiet = previousFrames.withLock { previous in
                defer { previous = result.walFrames }
                return result.walFrames == previous && result.copied == result.walFrames
            }
            if quiet, walFileSize() > walSizeLimit {
                try truncate()
            } else if result.walFrames > restartFrames {
                try restart()
            }
        } catch {
            // Busy or failing I/O: the WAL keeps the data; the next round tries again.
            logger.debug("WAL checkpoint did not run", metadata: ["error": "\(error)"])
        }
    }

    private func walFileSize() -> Int {
        var info = stat()
        return stat(walPath, &info) == 0 ? Int(info.st_size) : 0
    }

    private func restart() throws {
        try writer.writeWithoutTransaction { db in try Self.briefCheckpoint(.restart, on: db) }
    }

    /// Only when the store is quiet, so from this connection: no writer to contend with.
    private func truncate() throws {
        let before = walFileSize()
        try connection.writeWithoutTransaction { db in try Self.briefCheckpoint(.truncate, on: db) }
        logger.debug("WAL truncated while the store was quiet", metadata: ["bridge.wal_bytes_before": "\(before)"])
    }

    /// A checkpoint that holds writers back (RESTART, TRUNCATE) and so waits at most 20 ms for
    /// readers and writers to let go: SQLITE_BUSY then, and the next round tries again. The
    /// connection's own busy timeout is restored afterwards.
    private static func briefCheckpoint(_ mode: Database.CheckpointMode, on db: Database) throws {
        let previous = try Int.fetchOne(db, sql: "PRAGMA busy_timeout") ?? 0
        try db.execute(sql: "PRAGMA busy_timeout = 20")
        defer { try? db.execute(sql: "PRAGMA busy_timeout = \(previous)") }
        try db.checkpoint(mode)
    }
}
