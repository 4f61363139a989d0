import GRDB

/// The SQLite store's deduplication keys, in two tables that take turns (schema
/// `v9-deduplication-tables`): new keys go into the *current* table; the other, the *kept* one,
/// holds the keys of the turn before, and is only read. A key counts as a duplicate when either
/// table has it seen within the window.
///
/// Why not one table with an index on `seen_at`, as before: that index took a page in nearly every
/// commit (keys arrive in time order, so each commit wrote the index's last leaf, and the page
/// above it as the index grew), and pruning by it deleted keys scattered over the key table's
/// leaves, a page each. Here no key's time is indexed. Once the current table began more than a
/// window ago, every key of the kept table was seen before that, so all of them have expired:
/// pruning empties the kept table from its first key on (whole leaves at a time, in chunks so the
/// journal's commits go on between them), then the tables swap. A key stays between one and two
/// windows; an expired key that is still stored is not a duplicate (its `seen_at` says so).
///
/// Which table is current and since when are rows of `settings`, read in the transaction that
/// uses them, so a write the group committer runs again after a rollback sees what is stored.
enum DeduplicationTables {
    enum Table: String {
        case a = "dedup_a"
        case b = "dedup_b"

        var other: Table { self == .a ? .b : .a }

        /// The table a `settings` value names; none stored: `dedup_b` (the migration stores it).
        init(stored value: String?) throws {
            guard let table = Table(rawValue: value ?? Table.b.rawValue) else {
                throw StoreError.internalInconsistency("settings say the deduplication table is \(value ?? "")")
            }
            self = table
        }
    }

    /// The current table's name (a `settings` value), as an SQL expression.
    static let currentSQL = "(SELECT value FROM settings WHERE key = '\(currentKey)')"

    static let currentKey = "deduplication.current"
    static let sinceKey = "deduplication.since"

    /// How much later than the prune's time a table's turn is taken to begin: a request received
    /// just before a swap may be journaled, into the table that turns kept, just after the prune
    /// read its time. Its key must not count as older than the turn's start.
    static let slack: Double = 60

    /// Keys deleted from the kept table per transaction: short enough that a journal commit
    /// sharing the transaction barely waits for it.
    static let chunk = 2048

    struct Turn {
        /// Where new keys go.
        var current: Table
        /// When `current` became current (unix seconds); nil: not known yet (a file migrated or
        /// created since the last prune), taken as the next prune's time.
        var since: Double?

        var kept: Table { current.other }
    }

    static func turn(_ db: Database) throws -> Turn {
        let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT \(currentSQL), (SELECT value FROM settings WHERE key = '\(sinceKey)')"))
        return Turn(current: try Table(stored: row?[0]), since: (row?[1] as String?).flatMap(Double.init))
    }

    /// Records `key` as seen at `seenAt` unless it was seen within `window` before: true when it
    /// is new (the caller journals the event), false for a duplicate.
    static func claim(_ key: String, seenAt: Double, window: Double, current: Table, _ db: Database) throws -> Bool {
        let kept = try db.cachedStatement(sql: "SELECT seen_at FROM \(current.other.rawValue) WHERE key = ?")
        if let seen = try Double.fetchOne(kept, arguments: [key]), seen >= seenAt - window { return false }
        let table = current.rawValue
        let claim = try db.cachedStatement(sql: """
            INSERT INTO \(table)(key, seen_at) VALUES (?, ?)
            ON CONFLICT(key) DO UPDATE SET seen_at = excluded.seen_at WHERE \(table).seen_at < ?
            """)
        try claim.execute(arguments: [key, seenAt, seenAt - window])
        return db.changesCount > 0
    }

    /// One step of pruning at `now` (unix seconds): when the current table began more than
    /// `window` ago (its start is the time of the prune that began it, plus ``slack``), deletes
    /// up to `chunk` keys of the kept table, and once it is empty swaps the tables. True when
    /// more keys are left to delete (another step is due).
    static func prune(now: Double, window: Double, chunk: Int, _ db: Database) throws -> Bool {
        let turn = try turn(db)
        guard let since = turn.since else {
            try set(sinceKey, String(now + slack), db)
            return false
        }
        guard since < now - window else { return false }
        try db.execute(
            sql: "DELETE FROM \(turn.kept.rawValue) WHERE key IN (SELECT key FROM \(turn.kept.rawValue) ORDER BY key LIMIT ?)",
            arguments: [chunk])
        if db.changesCount == chunk { return true }
        try set(currentKey, turn.kept.rawValue, db)
        try set(sinceKey, String(now + slack), db)
        return false
    }

    private static func set(_ key: String, _ value: String, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .execute(arguments: [key, value])
    }

    /// The migration from one table with a time index: its keys become the kept table's, and new
    /// ones go into an empty current table. When that began is set by the next prune.
    static let migration = """
        DROP INDEX dedup_seen;
        ALTER TABLE dedup RENAME TO dedup_a;
        CREATE TABLE dedup_b (
            key TEXT PRIMARY KEY,
            seen_at REAL NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO settings(key, value) VALUES ('\(currentKey)', 'dedup_b');
        """
}
