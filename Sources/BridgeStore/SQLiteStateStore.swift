public import BridgeCore
public import Foundation
import GRDB
public import Logging
import Synchronization

/// The embedded state store: one SQLite file in WAL mode with `synchronous = FULL`, so a write
/// that returned survives a crash of the process and of the machine. Writes go through a group
/// committer; reads use GRDB's reader connections and never wait for a write.
public final class SQLiteStateStore: StateStore, SubscriptionStore {
    let pool: DatabasePool
    let committer: GroupCommitter
    private let checkpointer: Checkpointer
    private let walMeter: WALMeter
    /// Claimed deliveries: in memory, not on the delivery rows (see `claimDeliveries`).
    let claims = ClaimTable()
    /// Deliveries that are a cursor position, not a row (see ``SinkCursors``).
    let cursors: SinkCursors
    /// What this process journaled and has not routed, as values (see ``RecentEvents``).
    let recent: RecentEvents
    /// What this process routed, as values, until its sinks have it (see ``DeliveringEvents``).
    let delivering = DeliveringEvents()
    /// Which sinks have no pending row, so their claims come from memory.
    let pendingRows = PendingRows()
    /// The leases as the last claim read them, for claims from memory.
    let leases = LeaseMemo()
    /// Claims that read the file (tests: the others came from memory).
    let fileClaims = Atomic<Int>(0)
    /// Deduplication keys deleted per transaction when an expired table is emptied (``DeduplicationTables``).
    let deduplicationChunk: Int
    /// When this store last stamped each subscription's `last_notification_at` (event time, seconds).
    private let notificationStamps = Mutex<[String: Double]>([:])
    /// What the last journal write left for the next one in the same transaction (see ``JournalStart``).
    private let journalMemo = Mutex<JournalStart?>(nil)

    /// Where a journal write begins: the last sequence number given and the deduplication table
    /// that takes new keys. Read from the file by the first journal write of a transaction and
    /// handed on by each to the next in the same transaction: a group commit of twenty requests
    /// made forty single-value reads for the same two answers (2.6 % of the bridge's CPU at full
    /// speed, `perf`). Only a journal write numbers events, and only a deduplication prune turns
    /// the tables (it forgets the memo); a transaction rolled back, or retried with savepoints,
    /// has another number, so nothing of it is handed on.
    private struct JournalStart {
        var transaction: UInt64
        var lastSequence: Int64
        var deduplication: DeduplicationTables.Table
    }

    /// How often the journal stamps a subscription's `last_notification_at`: at most once a second
    /// per subscription, so a steady stream does not rewrite that row's page in every commit.
    static let notificationStampInterval: Double = 1
    let logger: Logger
    public let path: String

    /// Above this size the WAL is truncated at the next quiet moment (see `Checkpointer`): a burst
    /// grows it (readers keep checkpoints from catching up while it lasts; 1 GB after 290,000
    /// events in one benchmark), and SQLite would otherwise keep the file at its largest for good.
    public static let walSizeLimit = 64 << 20

    /// Rows of `sink_cursors` that are not a sink's (their slots are negative; a sink's are not):
    /// the router's cursor, the routed-through mark (schema `v7-routing-cursor`), and the open
    /// route range's first number and end (`v8-open-route-range`, see `writeRanges`).
    enum ProgressRow: Int {
        case routedThrough = -1
        case openRangeFirst = -2
        case openRangeEnd = -3

        /// The row's value as an SQL expression.
        var value: String { "(SELECT through FROM sink_cursors WHERE slot = \(rawValue))" }
    }

    /// The routed-through mark, as an SQL expression.
    static let routedThrough = ProgressRow.routedThrough.value

    /// How long after a transaction began the next may wait for company, and how many waiting
    /// urgent writes are company enough (``GroupCommitter``): at a steady 1,000 notifications/s
    /// about four then share a commit, its fsync and its pages.
    static let commitInterval = Duration.milliseconds(4)
    static let commitCompany = 8

    /// Opens (creating it when missing, and making it mode 0600 either way) and migrates the store at `path`.
    public convenience init(path: String, logger: Logger) throws {
        try self.init(path: path, walSizeLimit: Self.walSizeLimit, commitInterval: Self.commitInterval, commitCompany: Self.commitCompany, logger: logger)
    }

    /// `checkpointInterval` nil: the checkpointer runs a round only when `checkpointRound()` is called.
    /// `clock`: what a deferred write waits on for company, and the commit interval is measured on
    /// (``GroupCommitter``); zero `commitInterval`: transactions follow each other at once.
    init(
        path: String, walSizeLimit: Int, walRestartFrames: Int = 8192, checkpointInterval: DispatchTimeInterval? = .milliseconds(200),
        commitInterval: Duration = .zero, commitCompany: Int = 1, clock: any Clock<Duration> = ContinuousClock(), cursorDoneLimit: Int = 1024,
        deduplicationChunk: Int = DeduplicationTables.chunk, logger: Logger
    ) throws {
        self.path = path
        self.deduplicationChunk = deduplicationChunk
        self.logger = logger
        try Self.createPrivately(path)
        var configuration = Configuration()
        configuration.label = "graph-bridge.state"
        configuration.busyMode = .timeout(10)
        configuration.maximumReaderCount = 4
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        // Only now: DatabasePool switches its writer to WAL *after* prepareDatabase and sets
        // `synchronous = NORMAL` there, under which a commit is not fsync'd (it survives a killed
        // process, not a power cut). Set FULL on the writer and read it back.
        let (synchronous, meter) = try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Checkpoints run beside the writer (Checkpointer), not inside its commits.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            return (try Int.fetchOne(db, sql: "PRAGMA synchronous"), try WALMeter.install(on: db, path: path))
        }
        walMeter = meter
        guard synchronous == 2 else {
            throw StoreError.internalInconsistency("SQLite refused synchronous = FULL on \(path) (it reports \(synchronous.map(String.init) ?? "nothing"))")
        }
        try Self.migrator.migrate(pool)
        cursors = SinkCursors(try pool.read(Self.loadCursors), doneLimit: cursorDoneLimit)
        recent = try pool.read { db in
            RecentEvents(
                mark: try Int64.fetchOne(db, sql: "SELECT \(Self.routedThrough)") ?? 0, lastSequence: try Self.lastSequence(db))
        }
        committer = GroupCommitter(pool: pool, commitInterval: commitInterval, company: commitCompany, clock: clock)
        checkpointer = try Checkpointer(path: path, writer: pool, walSizeLimit: walSizeLimit, restartFrames: walRestartFrames, interval: checkpointInterval, logger: logger)
        checkpointer.start()
    }

    /// The state holds secrets (clientState values, refresh tokens): only the owner may read it.
    private static func createPrivately(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if !directory.isEmpty, !(FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue) {
            throw StoreError.cannotCreate(path, reason: "the folder \(directory) does not exist")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw StoreError.cannotCreate(path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        // On every open, not only at creation: a file copied from a backup or made by an older
        // version may be readable by others. SQLite gives its -wal and -shm files the database's
        // mode when it creates them; ones left from before are made private here too.
        guard fchmod(fd, 0o600) == 0 else {
            throw StoreError.cannotCreate(path, reason: "cannot make it private (mode 0600): \(String(cString: strerror(errno)))")
        }
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            _ = chmod(path + suffix, 0o600)
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    received_at REAL NOT NULL,
                    subscription TEXT NOT NULL,
                    body TEXT NOT NULL,
                    attachment TEXT,
                    routed INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX events_unrouted ON events(seq) WHERE routed = 0;
                CREATE INDEX events_received ON events(received_at);
                CREATE TABLE deliveries (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
                    sink TEXT NOT NULL,
                    status INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    created_at REAL NOT NULL,
                    next_attempt_at REAL NOT NULL,
                    last_error TEXT,
                    dead_at REAL
                );
                CREATE INDEX deliveries_due ON deliveries(sink, status, next_attempt_at);
                CREATE INDEX deliveries_event ON deliveries(event_seq);
                CREATE TABLE dedup (
                    key TEXT PRIMARY KEY,
                    seen_at REAL NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX dedup_seen ON dedup(seen_at);
                """)
        }
        migrator.registerMigration("v2-subscriptions") { db in
            try db.execute(sql: """
                CREATE TABLE subscriptions (
                    name TEXT PRIMARY KEY,
                    graph_id TEXT,
                    resource TEXT NOT NULL,
                    change_types TEXT NOT NULL,
                    client_state TEXT NOT NULL,
                    notification_url TEXT NOT NULL,
                    expiration REAL,
                    renewed_at REAL,
                    managed INTEGER NOT NULL,
                    last_notification_at REAL
                );
                CREATE TABLE settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v3-routing-watermark") { db in
            // Routing state moves from a flag per event to one number: every event up to
            // `routed_through` is routed. The dispatcher routes in sequence order and commits a
            // batch at once, so the number says what the flag said without rewriting each event
            // row and an index entry. `events.routed` stays (it now flags events routed ahead of the
            // mark, see `commitRouting`). Pruning walks the sequence, which follows arrival, instead
            // of an index on received_at.
            try db.execute(sql: """
                CREATE TABLE routing_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    routed_through INTEGER NOT NULL
                );
                INSERT INTO routing_state(id, routed_through) VALUES (1, COALESCE(
                    (SELECT MIN(seq) - 1 FROM events WHERE routed = 0),
                    (SELECT MAX(seq) FROM events),
                    0
                ));
                DROP INDEX events_unrouted;
                DROP INDEX events_received;
                """)
        }
        migrator.registerMigration("v4-replicas") { db in
            // Replicas, leases and claims (see `StateStore`). A SQLite file serves one process at
            // a time, so there is one live replica; the tables keep the contract the PostgreSQL
            // store shares with several. Events and deliveries from before have no replica: any
            // replica routes them, and they are unclaimed.
            try db.execute(sql: """
                CREATE TABLE replicas (
                    id TEXT PRIMARY KEY,
                    alive_until REAL NOT NULL
                ) WITHOUT ROWID;
                ALTER TABLE events ADD COLUMN accepted_by TEXT;
                ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
                CREATE INDEX deliveries_claimed ON deliveries(claimed_by) WHERE claimed_by IS NOT NULL;
                """)
        }
        migrator.registerMigration("v5-sink-cursors") { db in
            // Deliveries routed in order are a position, not a row (`SinkCursors`): a range of
            // sequence numbers routed to the same sinks, and a cursor per sink. A sink gets its
            // slot (the low bits of its deliveries' ids) when it is first routed to; earlier
            // deliveries stay rows.
            try db.execute(sql: """
                CREATE TABLE sink_cursors (
                    slot INTEGER PRIMARY KEY,
                    sink TEXT NOT NULL UNIQUE,
                    through INTEGER NOT NULL
                );
                CREATE TABLE routes (
                    first INTEGER PRIMARY KEY,
                    last INTEGER NOT NULL,
                    slots TEXT NOT NULL,
                    routed_at REAL NOT NULL
                );
                """)
        }
        migrator.registerMigration("v6-events-sequence") { db in
            // `events` without `AUTOINCREMENT`: the journal numbers events itself (`lastSequence`),
            // where `sqlite_sequence` was a page written in every journal commit. (The unique index
            // on `id` stays, though it costs a page a commit as well: the store contract refuses a
            // journal call that repeats an event id, on every store.)
            // The sequence goes on from the highest number ever given without `sqlite_sequence`: an
            // event above every one left was pruned, and only events at or below the routed-through
            // mark are, so `lastSequence` (the larger of the two) is at least that number.
            try db.execute(sql: """
                CREATE TABLE events_v6 (
                    seq INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    received_at REAL NOT NULL,
                    subscription TEXT NOT NULL,
                    body TEXT NOT NULL,
                    attachment TEXT,
                    routed INTEGER NOT NULL DEFAULT 0,
                    accepted_by TEXT
                );
                INSERT INTO events_v6(seq, id, received_at, subscription, body, attachment, routed, accepted_by)
                    SELECT seq, id, received_at, subscription, body, attachment, routed, accepted_by FROM events;
                DROP TABLE events;
                ALTER TABLE events_v6 RENAME TO events;
                """)
        }
        migrator.registerMigration("v7-routing-cursor") { db in
            // The routed-through mark is the router's cursor over the journal: a row of
            // `sink_cursors` (slot -1), not a table of its own. A routing commit and a cursor move
            // usually share a transaction, and now they write one page where they wrote two. The
            // row's name cannot be a sink's (YAML has no NUL), and every query over the sinks'
            // cursors asks for `slot >= 0`.
            try db.execute(sql: """
                INSERT INTO sink_cursors(slot, sink, through) SELECT -1, char(0) || 'routing', routed_through FROM routing_state;
                DROP TABLE routing_state;
                """)
        }
        migrator.registerMigration("v8-open-route-range") { db in
            // The last range routed is open: its end lives in rows -2 (its first number) and -3
            // (its end) of `sink_cursors`, which share the page the routing mark's move writes, so
            // routing on to the same sinks no longer rewrites the `routes` row's page in every
            // commit (`writeRanges`). Ranges are read through this view. A file without those rows
            // has no open range: every row's `last` is its end, as before.
            try db.execute(sql: """
                CREATE VIEW route_ranges AS
                SELECT first,
                    CASE WHEN first = (SELECT through FROM sink_cursors WHERE slot = -2)
                        THEN MAX(last, (SELECT through FROM sink_cursors WHERE slot = -3)) ELSE last END AS last,
                    slots, routed_at
                FROM routes;
                """)
        }
        migrator.registerMigration("v9-deduplication-tables") { db in
            // Deduplication keys in two tables that take turns, with no index on their time
            // (``DeduplicationTables``).
            try db.execute(sql: DeduplicationTables.migration)
        }
        return migrator
    }

    /// Creates a state file at `path` with the schema as the migrations up to `migration` (one of
    /// the names above) left it: what an older graph-bridge made. For migration tests.
    static func createFile(at path: String, migratedThrough migration: String, sql: String = "") throws {
        let queue = try DatabaseQueue(path: path)
        try migrator.migrate(queue, upTo: migration)
        if !sql.isEmpty { try queue.write { try $0.execute(sql: sql) } }
        try queue.close()
    }

    /// The names of the migrations the file at hand has applied.
    func appliedMigrations() throws -> [String] {
        try pool.read { try Self.migrator.appliedMigrations($0) }
    }

    // MARK: Journal

    public func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        try await withCheckedThrowingContinuation { continuation in
            journal(entries) { continuation.resume(with: $0) }
        }
    }

    /// The journal write without a task: the group committer calls `completion` on the writer's
    /// thread once the transaction holding these rows is durable.
    public func journal(_ entries: [JournalEntry], completion: @escaping @Sendable (Result<[JournalOutcome], any Error>) -> Void) {
        let rows = entries.map { entry in
            JournalRow(
                id: entry.event.id,
                receivedAt: entry.event.receivedAt.timeIntervalSince1970,
                subscription: entry.event.subscription.name,
                body: String(decoding: entry.event.encoded(), as: UTF8.self),
                attachment: entry.attachment?.serializedString,
                deduplicationKey: entry.deduplicationKey,
                replica: entry.replica?.rawValue
            )
        }
        let windowSeconds = DeliveryEngine.deduplicationWindow.seconds
        // Per entry, the number it was journaled under; nil: a duplicate.
        let committer = committer
        committer.submit(.now, { db -> [Int64?] in
            let transaction = committer.transaction
            let start = try self.journalMemo.withLock { $0 }.flatMap { $0.transaction == transaction ? $0 : nil } ?? Self.journalStart(transaction, db)
            let insert = try db.cachedStatement(sql: "INSERT INTO events(seq, id, received_at, subscription, body, attachment, accepted_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
            var sequence = start.lastSequence
            var sequences: [Int64?] = []
            sequences.reserveCapacity(rows.count)
            var subscriptions: Set<String> = []
            for row in rows {
                if let key = row.deduplicationKey,
                    try !DeduplicationTables.claim(key, seenAt: row.receivedAt, window: windowSeconds, current: start.deduplication, db)
                {
                    sequences.append(nil)
                    continue
                }
                sequence += 1
                try insert.execute(arguments: [sequence, row.id, row.receivedAt, row.subscription, row.body, row.attachment, row.replica])
                sequences.append(sequence)
                subscriptions.insert(row.subscription)
            }
            if let now = rows.last?.receivedAt {
                // At most once a second per subscription (by event time): the stamp only tells a
                // start how long the bridge was away, and the `subscriptions` command shows it.
                let due = self.notificationStamps.withLock { stamps -> [String] in
                    let names = subscriptions.filter { name in stamps[name].map { abs(now - $0) >= Self.notificationStampInterval } ?? true }
                    for name in names { stamps[name] = now }
                    return Array(names)
                }
                let touch = try db.cachedStatement(sql: "UPDATE subscriptions SET last_notification_at = ? WHERE name = ?")
                for name in due { try touch.execute(arguments: [now, name]) }
            }
            self.journalMemo.withLock { $0 = JournalStart(transaction: transaction, lastSequence: sequence, deduplication: start.deduplication) }
            return sequences
        }) { [recent] result in
            completion(
                result.map { sequences in
                    recent.journaled(
                        zip(entries, sequences).compactMap { entry, sequence in
                            sequence.map {
                                RecentEvents.Entry(
                                    pending: PendingEvent(sequence: $0, event: entry.event, attachment: entry.attachment), acceptedBy: entry.replica?.rawValue)
                            }
                        })
                    return sequences.map { $0 == nil ? .duplicate : .journaled }
                })
        }
    }

    /// The highest sequence number given so far: the last event's, or the routed-through mark when
    /// every event up to it was pruned. Two reads of pages the commit writes anyway, where
    /// `AUTOINCREMENT` wrote `sqlite_sequence` in every commit (schema `v6-events-sequence`).
    /// Only routed events are pruned, so no number above the mark was ever given and gone.
    private static let lastSequenceSQL = "MAX(IFNULL((SELECT MAX(seq) FROM events), 0), IFNULL(\(routedThrough), 0))"

    private static func lastSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT \(lastSequenceSQL)")) ?? 0
    }

    /// What the first journal write of a transaction reads before its inserts: the last sequence
    /// number, and which deduplication table takes new keys. Two single-value fetches, which read
    /// the column straight from SQLite; one fetch of a two-column `Row` cost twice as much (`perf`).
    private static func journalStart(_ transaction: UInt64, _ db: Database) throws -> JournalStart {
        let current = try String.fetchOne(db.cachedStatement(sql: "SELECT \(DeduplicationTables.currentSQL)"))
        return JournalStart(transaction: transaction, lastSequence: try lastSequence(db), deduplication: try DeduplicationTables.Table(stored: current))
    }

    // MARK: Routing

    public func unroutedEvents(limit: Int) async throws -> [PendingEvent] {
        try await unroutedEvents(after: 0, limit: limit)
    }

    public func unroutedEvents(after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        if let events = recent.unrouted(after: sequence, replica: nil, limit: limit) { return events }
        return try await unroutedEventsInFile(after: sequence, replica: nil, limit: limit)
    }

    public func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        if let events = recent.unrouted(after: sequence, replica: replica.rawValue, limit: limit) { return events }
        return try await unroutedEventsInFile(after: sequence, replica: replica.rawValue, limit: limit)
    }

    /// The file's answer to ``unroutedEvents(for:after:limit:)`` (`replica` nil: any replica's).
    func unroutedEventsInFile(after sequence: Int64, replica: String?, limit: Int) async throws -> [PendingEvent] {
        // Rows become events on the reader's thread: parsing stays off the cooperative pool.
        try await pool.read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT seq, body, attachment FROM events WHERE seq > MAX(?, \(Self.routedThrough)) AND routed = 0
                AND (? IS NULL OR accepted_by = ? OR accepted_by IS NULL)
                ORDER BY seq LIMIT ?
                """)
            let events = try Row.fetchAll(statement, arguments: [sequence, replica, replica, limit]).map(Self.pendingEvent)
            self.delivering.read(events)
            return events
        }
    }

    /// A read first: the usual answer, nothing to adopt, costs no write (and no fsync).
    public func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int {
        let arguments: StatementArguments = [replica.rawValue, now.timeIntervalSince1970]
        let condition = """
            seq > \(Self.routedThrough) AND routed = 0
            AND accepted_by IS NOT NULL AND accepted_by <> ?
            AND accepted_by NOT IN (SELECT id FROM replicas WHERE alive_until > ?)
            """
        let any = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1 FROM events WHERE \(condition) LIMIT 1", arguments: arguments) != nil }
        guard any else { return 0 }
        let (adopted, highest) = try await committer.write { db in
            try db.execute(sql: "UPDATE events SET accepted_by = ? WHERE \(condition)", arguments: [replica.rawValue] + arguments)
            return (db.changesCount, try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0)
        }
        // The file changed under what memory holds: reads go to the file until routing passes it.
        if adopted > 0 { recent.forget(through: highest) }
        return adopted
    }

    private static func pendingEvent(_ row: Row) throws -> PendingEvent {
        let body: String = row["body"]
        let attachment: String? = row["attachment"]
        return PendingEvent(
            sequence: row["seq"],
            event: try Self.event(body),
            attachment: try attachment.map { try JSONParser.parse($0, maxDepth: 256) }
        )
    }

    /// `events` may be any unrouted events, in any order. The routed-through mark moves past every
    /// routed event up to the first one still unrouted; an event routed ahead of it (its
    /// subscription's enrichment finished first) is flagged `routed = 1` instead, which the
    /// queries above the mark skip. Routing in order, the usual case, writes no flag at all.
    /// Events routed already (at or below the mark, or flagged) are left out.
    @discardableResult
    public func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> {
        guard !events.isEmpty else { return [] }
        let rows = events.map { routed in
            (
                sequence: routed.sequence,
                body: routed.changed ? String(decoding: routed.event.encoded(), as: UTF8.self) : nil,
                createdAt: routed.event.receivedAt.timeIntervalSince1970,
                sinks: routed.sinks
            )
        }
        let now = now.timeIntervalSince1970
        let (routed, newMark, changes) = try await committer.write(.deferred) { db -> (Set<Int64>, Int64, CursorChanges) in
            var changes = CursorChanges()
            let replaceBody = try db.cachedStatement(sql: "UPDATE events SET body = ? WHERE seq = ?")
            let insert = try db.cachedStatement(sql: "INSERT INTO deliveries(id, event_seq, sink, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)")
            let mark = try Int64.fetchOne(db.cachedStatement(sql: "SELECT \(Self.routedThrough)")) ?? 0
            let flagged = try db.cachedStatement(sql: "SELECT routed FROM events WHERE seq = ?")
            var routed: Set<Int64> = []
            var accepted: [(sequence: Int64, createdAt: Double, sinks: [String])] = []
            for row in rows {
                // Routed already (by this call, or before it): no second set of deliveries. A
                // sequence the store does not hold goes on, so its deliveries fail the foreign key.
                guard row.sequence > mark, try Int.fetchOne(flagged, arguments: [row.sequence]) ?? 0 == 0,
                    routed.insert(row.sequence).inserted
                else { continue }
                if let body = row.body {
                    try replaceBody.execute(arguments: [body, row.sequence])
                }
                accepted.append((row.sequence, row.createdAt, row.sinks))
            }
            let newMark = try Self.advanceMark(db, past: routed)
            // In order (at or below the new mark): a range and the cursors. Ahead of the mark: rows.
            var inOrder: [(sequence: Int64, slots: [Int])] = []
            var slotOf: [String: Int] = [:]  // one lookup per sink, not per event and sink
            for event in accepted.sorted(by: { $0.sequence < $1.sequence }) {
                var slots: [Int] = []
                for sink in Set(event.sinks) {
                    let slot = try slotOf[sink] ?? Self.slot(for: sink, mark: mark, db, &changes)
                    slotOf[sink] = slot
                    if event.sequence <= newMark {
                        slots.append(slot)
                    } else {
                        try insert.execute(arguments: [SinkCursors.deliveryID(sequence: event.sequence, slot: slot), event.sequence, sink, event.createdAt, now])
                        changes.rowsAdded = true
                    }
                }
                if event.sequence <= newMark { inOrder.append((event.sequence, slots.sorted())) }
            }
            try Self.writeRanges(inOrder, at: now, db, &changes)
            return (routed, newMark, changes)
        }
        apply(changes)
        // Held for the sinks in the form the file now holds: the one passed if changed, else the
        // journaled one (an event whose journaled form is not in memory is read at its claims).
        delivering.routed(
            events.filter { routed.contains($0.sequence) }.compactMap { routedEvent in
                let form = routedEvent.changed ? routedEvent.event : recent.event(routedEvent.sequence) ?? delivering.journaledForm(routedEvent.sequence)
                return form.map { (routedEvent.sequence, $0) }
            })
        recent.routed(routed, mark: newMark)
        return routed
    }

    /// Moves the routed-through mark over `committed` and the events routed earlier out of order,
    /// up to the first unrouted event; flags the committed events beyond it as routed. Returns the mark.
    private static func advanceMark(_ db: Database, past committed: Set<Int64>) throws -> Int64 {
        let mark = try Int64.fetchOne(db.cachedStatement(sql: "SELECT \(Self.routedThrough)")) ?? 0
        var ahead = committed.filter { $0 > mark }
        guard !ahead.isEmpty else { return mark }
        var newMark = mark
        let walk = try Row.fetchCursor(db.cachedStatement(sql: "SELECT seq, routed FROM events WHERE seq > ? ORDER BY seq"), arguments: [mark])
        while let row = try walk.next() {
            let sequence: Int64 = row["seq"]
            let routed: Int = row["routed"]
            guard ahead.remove(sequence) != nil || routed != 0 else { break }
            newMark = sequence
        }
        if newMark > mark {
            try db.cachedStatement(sql: "UPDATE sink_cursors SET through = ? WHERE slot = \(ProgressRow.routedThrough.rawValue)").execute(arguments: [newMark])
        }
        let flag = try db.cachedStatement(sql: "UPDATE events SET routed = 1 WHERE seq = ?")
        for sequence in ahead.sorted() { try flag.execute(arguments: [sequence]) }
        return newMark
    }

    // MARK: Replicas

    /// One process serves the file (the runner holds its lock), so the replica that registers is
    /// the only live one: every earlier replica's lease ends here and its claims are freed.
    public func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws {
        let aliveUntil = now.timeIntervalSince1970 + lease.seconds
        defer { leases.changed() }  // after the commit (or its failure)
        try await committer.write { db in
            try db.execute(sql: "DELETE FROM replicas WHERE id <> ?", arguments: [replica.rawValue])
            try db.execute(sql: "UPDATE deliveries SET claimed_by = NULL WHERE claimed_by IS NOT NULL AND claimed_by <> ?", arguments: [replica.rawValue])
            try db.execute(
                sql: "INSERT INTO replicas(id, alive_until) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET alive_until = excluded.alive_until",
                arguments: [replica.rawValue, aliveUntil])
        }
        claims.keepOnly(replica.rawValue)
    }

    @discardableResult
    public func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool {
        let aliveUntil = now.timeIntervalSince1970 + lease.seconds
        let seconds = now.timeIntervalSince1970
        defer { leases.changed() }
        return try await committer.write(.deferred) { db in
            let previous = try Double.fetchOne(db, sql: "SELECT alive_until FROM replicas WHERE id = ?", arguments: [replica.rawValue])
            try db.execute(
                sql: "INSERT INTO replicas(id, alive_until) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET alive_until = excluded.alive_until",
                arguments: [replica.rawValue, aliveUntil])
            return (previous ?? -.infinity) > seconds
        }
    }

    public func releaseReplica(_ replica: ReplicaID) async throws {
        defer { leases.changed() }
        try await committer.write { db in
            try db.execute(sql: "UPDATE deliveries SET claimed_by = NULL WHERE claimed_by = ?", arguments: [replica.rawValue])
            try db.execute(sql: "DELETE FROM replicas WHERE id = ?", arguments: [replica.rawValue])
        }
        claims.release(replica.rawValue)
    }

    // MARK: Deliveries

    /// Claims live in memory (``ClaimTable``): a claim is two reads and no write, where it was a
    /// commit of its own (a delivery waited for its `fdatasync`) and two B-tree pages per delivery.
    /// The file is one process's (it is locked), and a registering replica frees every earlier
    /// claim, so a claim written to it never outlived its process anyway.
    public func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] {
        let seconds = now.timeIntervalSince1970
        guard limit > 0 else { return [] }
        if let deliveries = claimFromMemory(sink: sink, replica: replica, now: seconds, limit: limit) { return deliveries }
        let claims = self.claims
        let (epoch, leaseEpoch) = (pendingRows.epoch, leases.epoch)
        fileClaims.add(1, ordering: .relaxed)
        // One read transaction (one hop to a reader thread) for the claim and the deliveries' events.
        return try await pool.read { db -> [Delivery] in
            let claimed = try claims.claim(sink: sink, replica: replica.rawValue, limit: limit, live: { try self.liveReplicas(db, at: seconds, since: leaseEpoch) }) { count in
                try self.dueCandidates(sink: sink, now: seconds, count: count, skip: { _ in false }, db).map(\.id)
            }
            try self.notePendingRows(sink: sink, since: epoch, db)
            guard !claimed.isEmpty else { return [] }
            do {
                let deliveries = try self.deliveries(claimed, sink: sink, db)
                if deliveries.count < claimed.count {
                    // A candidate whose row or event this snapshot lacks (the same snapshot found
                    // it due, so only a damaged file does this): not delivered, not held.
                    let found = Set(deliveries.map(\.id))
                    claims.end(claimed.filter { !found.contains($0) })
                }
                return deliveries
            } catch {
                claims.end(claimed)
                throw error
            }
        }
    }

    /// Another live replica's claims never wait here: a replica that registers on the file ends
    /// every other's lease (one process per file), so every live claim is `replica`'s own.
    public func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? {
        let seconds = now.timeIntervalSince1970
        if pendingRows.hasNone(sink), let live = leases.live(at: seconds) {
            // Only cursor deliveries: their due dates are in memory.
            let held = claims.held(sink: sink, live: live)
            guard let slot = cursors.slot(of: sink) else { return nil }
            return cursors.pending(slot: slot, limit: 1, skip: { held.contains(SinkCursors.deliveryID(sequence: $0, slot: slot)) }).first
                .map { Date(timeIntervalSince1970: $0.due) }
        }
        let claims = self.claims
        let (epoch, leaseEpoch) = (pendingRows.epoch, leases.epoch)
        return try await pool.read { db -> Double? in
            let held = claims.held(sink: sink, live: try self.liveReplicas(db, at: seconds, since: leaseEpoch))
            try self.notePendingRows(sink: sink, since: epoch, db)
            return try self.earliestDue(sink: sink, skip: held.contains, rowsLimit: held.count + 1, db)
        }.map(Date.init(timeIntervalSince1970:))
    }

    // MARK: Claims from memory

    /// The claim without a read, for a sink with no pending row (``PendingRows``): its due
    /// deliveries are its cursor's, whose events the routing left in memory. Nil when it cannot
    /// be made so (a pending row may exist, the live replicas were not read lately, an event is
    /// not in memory): then the claim reads the file.
    private func claimFromMemory(sink: String, replica: ReplicaID, now seconds: Double, limit: Int) -> [Delivery]? {
        guard pendingRows.hasNone(sink), let live = leases.live(at: seconds) else { return nil }
        guard let slot = cursors.slot(of: sink) else { return [] }
        var events: [Int64: BridgeEvent] = [:]
        let claimed: [Int64]
        do {
            claimed = try claims.claim(sink: sink, replica: replica.rawValue, limit: limit, live: { live }) { count in
                var ids: [Int64] = []
                for (sequence, due) in cursors.pending(slot: slot, limit: count) where due <= seconds {
                    guard let event = delivering.event(sequence) else { throw NotInMemory() }
                    events[sequence] = event
                    ids.append(SinkCursors.deliveryID(sequence: sequence, slot: slot))
                }
                return ids
            }
        } catch {
            return nil
        }
        return claimed.compactMap { id in
            guard let (sequence, _) = SinkCursors.decode(id), let event = events[sequence] else { return nil }
            return Delivery(id: id, sink: sink, event: event, attempts: 0, createdAt: event.receivedAt)
        }
    }

    private struct NotInMemory: Error {}

    /// The replicas whose lease holds at `seconds`; the leases are remembered for claims from
    /// memory unless one changed since `epoch` (read before the read transaction began).
    private func liveReplicas(_ db: Database, at seconds: Double, since epoch: UInt64) throws -> Set<String> {
        var all: [String: Double] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT id, alive_until FROM replicas")) { all[row["id"]] = row["alive_until"] }
        leases.remember(all, readAt: seconds, since: epoch)
        return LeaseMemo.live(all, at: seconds)
    }

    /// Tells ``PendingRows`` when this snapshot holds no pending row of `sink`.
    private func notePendingRows(sink: String, since epoch: UInt64, _ db: Database) throws {
        let any = try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM deliveries WHERE sink = ? AND status = 0)"), arguments: [sink]) ?? true
        if !any { pendingRows.observedNone(sink, since: epoch) }
    }

    public func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] {
        let seconds = now.timeIntervalSince1970
        return try await pool.read { db in
            let ids = try self.dueCandidates(sink: sink, now: seconds, count: limit + excluding.count, skip: excluding.contains, db).prefix(limit).map(\.id)
            return try self.deliveries(Array(ids), sink: sink, db)
        }
    }

    public func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? {
        try await pool.read { db in
            try self.earliestDue(sink: sink, skip: excluding.contains, rowsLimit: excluding.count + 1, db)
        }.map(Date.init(timeIntervalSince1970:))
    }

    /// A row is deleted; a cursor delivery is marked done (it was delivered, whatever the commit
    /// does), and its sink's cursor moves over the done ones in the same commit.
    public func recordSuccesses(deliveryIDs: [Int64]) async throws {
        guard !deliveryIDs.isEmpty else { return }
        let changes = try await committer.write(.deferred) { db -> CursorChanges in
            let statement = try db.cachedStatement(sql: "DELETE FROM deliveries WHERE id = ?")
            var delivered: [Int: [Int64]] = [:]
            for id in deliveryIDs {
                try statement.execute(arguments: [id])
                if db.changesCount == 0, let (sequence, slot) = SinkCursors.decode(id) { delivered[slot, default: []].append(sequence) }
            }
            var changes = CursorChanges()
            for (slot, sequences) in delivered {
                self.cursors.markDone(sequences, slot: slot)
                changes.merge(try self.moveCursor(slot: slot, db), slot: slot)
            }
            return changes
        }
        apply(changes)
        claims.end(deliveryIDs)
    }

    public func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws {
        let next = nextAttemptAt.timeIntervalSince1970
        try await recordFailure(deliveryID) { db in
            try db.cachedStatement(sql: "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?, claimed_by = NULL WHERE id = ?")
                .execute(arguments: [attempts, next, error, deliveryID])
            guard db.changesCount == 0 else { return nil }
            return try self.materialize(deliveryID, status: 0, attempts: attempts, nextAttemptAt: next, error: error, deadAt: nil, db)
        }
    }

    public func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws {
        let deadAt = date.timeIntervalSince1970
        try await recordFailure(deliveryID) { db in
            try db.cachedStatement(sql: "UPDATE deliveries SET status = 1, attempts = ?, last_error = ?, dead_at = ?, claimed_by = NULL WHERE id = ?")
                .execute(arguments: [attempts, error, deadAt, deliveryID])
            guard db.changesCount == 0 else { return nil }
            return try self.materialize(deliveryID, status: 1, attempts: attempts, nextAttemptAt: deadAt, error: error, deadAt: deadAt, db)
        }
    }

    /// A retry or a dead letter: `update` changes the row, or makes the cursor delivery one (and
    /// returns its slot and sequence number), which its cursor may then pass. The mark that it
    /// is done goes to the mirror only after the commit: before, a cursor could pass a delivery
    /// whose row was rolled back.
    private func recordFailure(_ id: Int64, _ update: @escaping @Sendable (Database) throws -> (slot: Int, sequence: Int64)?) async throws {
        let changes = try await committer.write(.deferred) { db -> CursorChanges in
            var changes = CursorChanges()
            guard let (slot, sequence) = try update(db) else { return changes }
            changes.done[slot] = [sequence]
            changes.merge(try self.moveCursor(slot: slot, alsoDone: [sequence], db), slot: slot)
            return changes
        }
        apply(changes)
        claims.end(id)
    }

    public func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] {
        let kept = JSONValue.array(sinks.sorted().map(JSONValue.string)).serializedString
        defer { claims.endAll(exceptFor: sinks) }
        let deadAt = date.timeIntervalSince1970
        let (retired, changes) = try await committer.write { db -> ([String: Int], CursorChanges) in
            var retired: [String: Int] = [:]
            let pending = "status = 0 AND sink NOT IN (SELECT value FROM json_each(?))"
            for row in try Row.fetchAll(db, sql: "SELECT sink, COUNT(*) AS n FROM deliveries WHERE \(pending) GROUP BY sink", arguments: [kept]) {
                retired[row["sink"]] = row["n"]
            }
            if !retired.isEmpty {
                try db.execute(
                    sql: "UPDATE deliveries SET status = 1, last_error = ?, dead_at = ?, claimed_by = NULL WHERE \(pending)",
                    arguments: [error, deadAt, kept])
            }
            var changes = CursorChanges()
            for (sink, count) in try self.retireCursorDeliveries(exceptFor: sinks, error: error, at: deadAt, db, &changes) {
                retired[sink, default: 0] += count
            }
            return (retired, changes)
        }
        apply(changes)
        return retired
    }

    // MARK: Inspection and replay

    public func queueDepths() async throws -> [String: QueueDepth] {
        try await pool.read { db in
            var depths: [String: QueueDepth] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT sink, status, COUNT(*) AS n FROM deliveries GROUP BY sink, status") {
                let sink: String = row["sink"]
                let status: Int = row["status"]
                let count: Int = row["n"]
                var depth = depths[sink] ?? QueueDepth(pending: 0, dead: 0)
                if status == 0 { depth.pending = count } else { depth.dead = count }
                depths[sink] = depth
            }
            for (sink, count) in self.cursors.pendingCounts() {
                depths[sink, default: QueueDepth(pending: 0, dead: 0)].pending += count
            }
            return depths
        }
    }

    public func unroutedCount() async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE seq > \(Self.routedThrough) AND routed = 0") ?? 0
        }
    }

    public func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage {
        let (condition, arguments) = Self.condition(selection, table: "d")
        return try await pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM deliveries d WHERE \(condition)", arguments: arguments) ?? 0
            let letters = try Row.fetchAll(db, sql: """
                SELECT d.id, d.sink, d.attempts, d.last_error, d.created_at, d.dead_at, e.id AS event_id, e.subscription
                FROM deliveries d JOIN events e ON e.seq = d.event_seq
                WHERE \(condition) ORDER BY d.id LIMIT ?
                """, arguments: arguments + StatementArguments([max(0, limit)])).map(Self.deadLetter)
            return DeadLetterPage(letters: letters, total: total)
        }
    }

    public func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int {
        let now = now.timeIntervalSince1970
        let (condition, arguments) = Self.condition(selection, table: "deliveries")
        let retried = try await committer.write { db -> [Int64] in
            try Self.requireKnownIDs(selection, condition: condition, arguments: arguments, db)
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM deliveries WHERE \(condition)", arguments: arguments)
            try db.execute(
                sql: "UPDATE deliveries SET status = 0, created_at = ?, next_attempt_at = ?, dead_at = NULL, claimed_by = NULL WHERE \(condition)",
                arguments: StatementArguments([now, now]) + arguments)
            return ids
        }
        pendingRows.mayHaveAdded()
        // A dead letter holds no claim; one left from before it died must not hold its replay back.
        claims.end(retried)
        return retried.count
    }

    public func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        let (condition, arguments) = Self.condition(selection, table: "deliveries")
        return try await committer.write { db in
            try Self.requireKnownIDs(selection, condition: condition, arguments: arguments, db)
            try db.execute(sql: "DELETE FROM deliveries WHERE \(condition)", arguments: arguments)
            return db.changesCount
        }
    }

    /// The SQL condition on `table` (the deliveries) for a selection's dead letters, and its arguments.
    private static func condition(_ selection: DeadLetterSelection, table: String) -> (String, StatementArguments) {
        var clauses = ["\(table).status = 1"]
        var arguments: StatementArguments = []
        if let ids = selection.ids {
            // One JSON array argument, however many ids (SQLite limits the number of arguments).
            clauses.append("\(table).id IN (SELECT value FROM json_each(?))")
            arguments += ["[" + ids.map(String.init).joined(separator: ",") + "]"]
        }
        if let sink = selection.sink {
            clauses.append("\(table).sink = ?")
            arguments += [sink]
        }
        if let since = selection.deadSince {
            clauses.append("\(table).dead_at >= ?")
            arguments += [since.timeIntervalSince1970]
        }
        if let before = selection.deadBefore {
            clauses.append("\(table).dead_at < ?")
            arguments += [before.timeIntervalSince1970]
        }
        return (clauses.joined(separator: " AND "), arguments)
    }

    /// Inside a write: throws ``UnknownDeadLetters`` when any id of the selection is not one of its dead letters.
    private static func requireKnownIDs(_ selection: DeadLetterSelection, condition: String, arguments: StatementArguments, _ db: Database) throws {
        guard let ids = selection.ids else { return }
        let found = Set(try Int64.fetchAll(db, sql: "SELECT id FROM deliveries WHERE \(condition)", arguments: arguments))
        var unknown: [Int64] = []
        for id in ids where !found.contains(id) && !unknown.contains(id) { unknown.append(id) }
        if !unknown.isEmpty { throw UnknownDeadLetters(ids: unknown) }
    }

    private static func deadLetter(_ row: Row) -> DeadLetter {
        DeadLetter(
            id: row["id"],
            sink: row["sink"],
            eventID: row["event_id"],
            subscription: row["subscription"],
            attempts: row["attempts"],
            lastError: row["last_error"] ?? "",
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            deadAt: Date(timeIntervalSince1970: row["dead_at"] ?? 0)
        )
    }

    public func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {
        let delivered = date.timeIntervalSince1970
        let window = DeliveryEngine.deduplicationWindow.seconds
        // The deduplication tables' clock: the prune's own time, of which the cut-off is a window before.
        let now = deduplicationBefore.timeIntervalSince1970 + window
        let chunk = deduplicationChunk
        let (removed, more) = try await committer.write(.deferred) { db -> (Set<Int64>, Bool) in
            // Sequence follows arrival: the first event received on or after the cut-off bounds the
            // walk, so it visits only old rows (and events still waiting for a delivery), not the
            // whole retention window. Events a cursor has not passed for every sink of their range
            // stay (read from the file: the mirror may lag a routing commit).
            let (limit, doneRanges) = try Self.cursorPruneLimit(db)
            try db.execute(sql: """
                DELETE FROM events WHERE seq <= MIN(\(Self.routedThrough), ?)
                AND seq < IFNULL((SELECT seq FROM events WHERE received_at >= ? ORDER BY seq LIMIT 1), 9223372036854775807)
                AND received_at < ?
                AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event_seq = events.seq)
                """, arguments: [limit, delivered, delivered])
            if !doneRanges.isEmpty {
                try db.execute(sql: "DELETE FROM routes WHERE first IN (SELECT value FROM json_each(?))", arguments: ["[" + doneRanges.map(String.init).joined(separator: ",") + "]"])
            }
            return (Set(doneRanges), try self.pruneDeduplication(now: now, window: window, chunk: chunk, db))
        }
        cursors.removeRanges(firsts: removed)
        // The rest of an expired table, a chunk a transaction: the journal commits between them.
        var again = more
        while again {
            try Task.checkCancellation()  // the bridge is stopping: the next prune goes on
            again = try await committer.write(.deferred) { db in try self.pruneDeduplication(now: now, window: window, chunk: chunk, db) }
        }
    }

    /// A prune may turn the deduplication tables: the next journal write reads which is current.
    private func pruneDeduplication(now: Double, window: Double, chunk: Int, _ db: Database) throws -> Bool {
        journalMemo.withLock { $0 = nil }
        return try DeduplicationTables.prune(now: now, window: window, chunk: chunk, db)
    }

    // MARK: Subscriptions and settings

    public func subscriptionRecords() async throws -> [SubscriptionRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM subscriptions ORDER BY name").map { row in
                let expiration: Double? = row["expiration"]
                let renewedAt: Double? = row["renewed_at"]
                let last: Double? = row["last_notification_at"]
                return SubscriptionRecord(
                    name: row["name"], graphID: row["graph_id"], resource: row["resource"], changeTypes: row["change_types"],
                    clientState: row["client_state"], notificationURL: row["notification_url"],
                    expiration: expiration.map(Date.init(timeIntervalSince1970:)), renewedAt: renewedAt.map(Date.init(timeIntervalSince1970:)),
                    managed: row["managed"], lastNotificationAt: last.map(Date.init(timeIntervalSince1970:))
                )
            }
        }
    }

    public func saveSubscription(_ record: SubscriptionRecord) async throws {
        try await committer.write { db in
            try db.execute(sql: """
                INSERT INTO subscriptions(name, graph_id, resource, change_types, client_state, notification_url, expiration, renewed_at, managed, last_notification_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET graph_id = excluded.graph_id, resource = excluded.resource, change_types = excluded.change_types,
                  client_state = excluded.client_state, notification_url = excluded.notification_url, expiration = excluded.expiration,
                  renewed_at = excluded.renewed_at, managed = excluded.managed,
                  last_notification_at = COALESCE(excluded.last_notification_at, subscriptions.last_notification_at)
                """, arguments: [
                    record.name, record.graphID, record.resource, record.changeTypes, record.clientState, record.notificationURL,
                    record.expiration?.timeIntervalSince1970, record.renewedAt?.timeIntervalSince1970, record.managed,
                    record.lastNotificationAt?.timeIntervalSince1970,
                ])
        }
    }

    public func deleteSubscription(name: String) async throws {
        try await committer.write { db in try db.execute(sql: "DELETE FROM subscriptions WHERE name = ?", arguments: [name]) }
    }

    public func setting(_ key: String) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [key]) }
    }

    public func setSetting(_ key: String, to value: String?) async throws {
        try await committer.write { db in
            if let value {
                try db.execute(sql: "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, value])
            } else {
                try db.execute(sql: "DELETE FROM settings WHERE key = ?", arguments: [key])
            }
        }
    }

    /// The most recent events, newest first (for the status page).
    public func recentEvents(limit: Int) async throws -> [BridgeEvent] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT body FROM events ORDER BY seq DESC LIMIT ?", arguments: [limit]).map { try Self.event($0) }
        }
    }

    /// How many events the store holds (routed or not).
    public func eventCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0 }
    }

    deinit {
        checkpointer.stop()
        walMeter.close()
    }

    /// Bytes the store's commits appended to its WAL since it opened (also
    /// `graph_bridge_state_wal_bytes_total`).
    public var walBytesWritten: Int64 { walMeter.bytesWritten }

    /// Transactions the store committed since it opened, each one fsync (also
    /// `graph_bridge_state_commits_total`).
    public var commits: Int64 { walMeter.commits }

    /// Runs a WAL checkpoint now (one also runs every 200 ms by itself): the WAL's frames and how
    /// many of them are in the database file afterwards.
    public func checkpoint() async throws -> (walFrames: Int, copied: Int) {
        try checkpointer.checkpointNow()
    }

    /// One round of the checkpointer now, as its timer runs them (for tests that drive it).
    func checkpointRound() {
        checkpointer.round()
    }

    /// The writer connection's journal mode and `synchronous` level (`wal` and 2 = FULL: every
    /// commit is fsync'd before a write returns).
    public func durability() async throws -> (journalMode: String, synchronous: Int) {
        try await pool.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
    }

    /// A cheap read that fails when the store cannot be read.
    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    static func event(_ body: String) throws -> BridgeEvent {
        do {
            return try BridgeEvent(encoded: Array(body.utf8))
        } catch {
            throw StoreError.corruptRecord("event: \(error)")
        }
    }
}

private struct JournalRow: Sendable {
    var id: String
    var receivedAt: Double
    var subscription: String
    var body: String
    var attachment: String?
    var deduplicationKey: String?
    var replica: String?
}
