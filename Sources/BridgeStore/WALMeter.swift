import GRDB
import GRDBSQLite
import Glibc
import Metrics
import Synchronization

/// Counts the bytes the writer's commits append to the WAL (`graph_bridge_state_wal_bytes_total`):
/// the figure that says how much a notification costs the disk, whatever the group committer made
/// of it. SQLite calls the WAL hook after every commit with the number of frames the WAL holds;
/// the frames a commit wrote are the growth since the previous commit, or all of them when the WAL
/// started over (a checkpoint restarted it: its header's checkpoint counter, read back from the
/// file, changed). A frame is one page plus its 24-byte header.
///
/// Registered on the writer connection only, which makes every commit (the checkpointer copies
/// frames out and writes none). Setting a WAL hook turns SQLite's automatic checkpoint off, which
/// the store has done already (`wal_autocheckpoint = 0`).
final class WALMeter: Sendable {
    private struct State {
        var frames: Int32 = 0
        var checkpointSequence: UInt32?
        var fd: Int32 = -1
    }

    private let walPath: String
    private let frameBytes: Int64
    private let state = Mutex(State())
    private let written = Atomic<Int64>(0)
    private let counter = Counter(label: "graph_bridge_state_wal_bytes_total")
    private let commitCount = Atomic<Int64>(0)
    private let commitCounter = Counter(label: "graph_bridge_state_commits_total")

    private init(walPath: String, pageSize: Int) {
        self.walPath = walPath
        self.frameBytes = Int64(pageSize + 24)
    }

    /// Installs a meter on `db` (the writer connection of the store at `path`). The hook's context
    /// is retained for good (a few bytes per store opened), so a commit that runs after the store
    /// let go of the meter still finds it; ``close()`` gives back the file descriptor.
    static func install(on db: Database, path: String) throws -> WALMeter {
        let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
        let meter = WALMeter(walPath: path + "-wal", pageSize: pageSize)
        let context = Unmanaged.passRetained(meter).toOpaque()
        _ = sqlite3_wal_hook(
            db.sqliteConnection,
            { context, _, _, frames in
                guard let context else { return SQLITE_OK }
                Unmanaged<WALMeter>.fromOpaque(context).takeUnretainedValue().committed(walFrames: frames)
                return SQLITE_OK
            }, context)
        return meter
    }

    /// Bytes appended to the WAL by commits since the store opened.
    var bytesWritten: Int64 { written.load(ordering: .relaxed) }

    /// Commits (each an fsync of the WAL with `synchronous = FULL`) since the store opened.
    var commits: Int64 { commitCount.load(ordering: .relaxed) }

    /// On the writer's thread, after a commit: the WAL now holds `walFrames` frames.
    private func committed(walFrames: Int32) {
        commitCount.add(1, ordering: .relaxed)
        commitCounter.increment()
        let newFrames = state.withLock { state -> Int32 in
            if state.fd == -1 { state.fd = open(walPath, O_RDONLY | O_CLOEXEC) }
            let sequence = Self.checkpointSequence(state.fd)
            let restarted = sequence != nil && state.checkpointSequence != nil && sequence != state.checkpointSequence
            let added = restarted || walFrames < state.frames ? walFrames : walFrames - state.frames
            state.frames = walFrames
            if sequence != nil { state.checkpointSequence = sequence }
            return added
        }
        guard newFrames > 0 else { return }
        let bytes = Int64(newFrames) * frameBytes
        written.add(bytes, ordering: .relaxed)
        counter.increment(by: bytes)
    }

    /// The WAL header's checkpoint sequence number (bytes 12-15, big-endian): it changes each time
    /// the WAL starts over from its first frame.
    private static func checkpointSequence(_ fd: Int32) -> UInt32? {
        guard fd >= 0 else { return nil }
        var bytes: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        let count = withUnsafeMutableBytes(of: &bytes) { pread(fd, $0.baseAddress, 4, 12) }
        guard count == 4 else { return nil }
        return UInt32(bytes.0) << 24 | UInt32(bytes.1) << 16 | UInt32(bytes.2) << 8 | UInt32(bytes.3)
    }

    /// Closes the WAL file descriptor (the store is closing); a later commit still counts, and
    /// sees a restart only by the frame count going down.
    func close() {
        state.withLock { state in
            if state.fd >= 0 { _ = Glibc.close(state.fd) }
            state.fd = -2
        }
    }
}
