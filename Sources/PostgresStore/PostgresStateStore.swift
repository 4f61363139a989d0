public import BridgeCore
public import BridgeSettings
public import Foundation
public import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The shared state store: the same journal, delivery queue and subscription records as the
/// SQLite store, in a PostgreSQL database (`state.url`), shared by several bridge processes
/// (replicas): deliveries are claimed with `FOR UPDATE SKIP LOCKED` under a replica's lease, and
/// an event is routed at most once however many replicas race for it.
///
/// Leases compare the times the replicas pass (their own clocks), not the server's `now()`: the
/// contract is the same on every store and tests move time by passing it. Replicas' clocks must
/// agree to well within the lease (NTP does); see docs/reliability.md.
///
/// Every change is one PostgreSQL transaction that has committed (with the server's default
/// `synchronous_commit = on`, flushed to its WAL) before the method returns; concurrent journal
/// writes share one (group commit, ``PostgresGroupCommitter``). Dates are stored as
/// `double precision` seconds since 1970, as the SQLite store keeps them, so they come back exact.
///
/// One `PostgresClient` (a pool of at most `maximumConnections`) serves every call; it runs in a
/// task of the store's own until ``shutdown()``.
public final class PostgresStateStore: StateStore, SubscriptionStore, StoreInspection {
    /// The schema version this build creates and understands (see `migrations`).
    public static let schemaVersion = migrations.count

    public let location: PostgresLocation
    let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let committer: PostgresGroupCommitter
    /// When this process last stamped each subscription's `last_notification_at`.
    let notificationStamps = Mutex<[String: Date]>([:])
    let logger: Logger

    /// Connects to `location` and creates or migrates the schema. Throws when the server cannot be
    /// reached, refuses the login, or holds a schema newer than this build knows.
    public init(location: PostgresLocation, maximumConnections: Int = 4, logger: Logger) async throws {
        self.location = location
        self.logger = logger
        var configuration =
            if let socket = location.socketPath {
                PostgresClient.Configuration(unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
            } else {
                PostgresClient.Configuration(
                    host: location.host, port: location.port, username: location.user, password: location.password,
                    database: location.database, tls: try Self.tls(location))
            }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(10)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        let writer = PostgresJournalWriter(client: client, location: location, logger: logger)
        committer = PostgresGroupCommitter(batch: { try await writer.batch($0) }, alone: { try await writer.alone($0) })
        runTask = Task { await client.run() }
        do {
            try await Self.probe(location, logger: logger)
            try await migrate()
        } catch {
            runTask.cancel()
            throw error
        }
    }

    /// Closes the connections. The store cannot be used afterwards.
    public func shutdown() async {
        runTask.cancel()
        await runTask.value
    }

    deinit { runTask.cancel() }

    /// One connection, opened and closed, before the pool: the pool retries a server it cannot
    /// reach for a minute before a query fails; this fails at once, with the server's reason
    /// (refused, no such database, authentication failed).
    private static func probe(_ location: PostgresLocation, logger: Logger) async throws {
        var configuration =
            if let socket = location.socketPath {
                PostgresConnection.Configuration(unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
            } else {
                PostgresConnection.Configuration(
                    host: location.host, port: location.port, username: location.user, password: location.password, database: location.database,
                    tls: try connectionTLS(location))
            }
        configuration.options.connectTimeout = .seconds(10)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
        } catch let error as PSQLError {
            throw PostgresStoreError(error, location: location)
        } catch {
            throw PostgresStoreError("PostgreSQL at \(location): \(error)")
        }
    }

    static func connectionTLS(_ location: PostgresLocation) throws -> PostgresConnection.Configuration.TLS {
        guard let configuration = tlsConfiguration(location) else { return .disable }
        return .require(try NIOSSLContext(configuration: configuration))
    }

    private static func tls(_ location: PostgresLocation) throws -> PostgresClient.Configuration.TLS {
        guard let configuration = tlsConfiguration(location) else { return .disable }
        return .require(configuration)
    }

    /// TLS per `sslmode`: none for `disable`; `require` encrypts without checking the certificate;
    /// `verify-full` checks it against `sslrootcert` (or the system's roots) and the host name.
    private static func tlsConfiguration(_ location: PostgresLocation) -> TLSConfiguration? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch location.tls {
        case .disable:
            return nil
        case .require:
            configuration.certificateVerification = .none
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            if let path = location.rootCertificatePath {
                configuration.trustRoots = .file(path)
            }
        }
        return configuration
    }

    // MARK: Schema

    /// Each entry takes the schema from version `index` to `index + 1`; never edit one that shipped.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE events (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                received_at double precision NOT NULL,
                subscription text NOT NULL,
                body text NOT NULL,
                attachment text,
                routed boolean NOT NULL DEFAULT false
            )
            """,
            // Routing state is a flag per event, not a routed-through number as in SQLite: here
            // several transactions journal at once, and one may commit a later sequence number
            // before another commits an earlier one, which a mark would then skip for good.
            "CREATE INDEX events_unrouted ON events(seq) WHERE NOT routed",
            "CREATE INDEX events_received ON events(received_at)",
            """
            CREATE TABLE deliveries (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_seq bigint NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
                sink text NOT NULL,
                status smallint NOT NULL DEFAULT 0,
                attempts integer NOT NULL DEFAULT 0,
                created_at double precision NOT NULL,
                next_attempt_at double precision NOT NULL,
                last_error text,
                dead_at double precision
            )
            """,
            "CREATE INDEX deliveries_due ON deliveries(sink, status, next_attempt_at)",
            "CREATE INDEX deliveries_event ON deliveries(event_seq)",
            "CREATE TABLE dedup (key text PRIMARY KEY, seen_at double precision NOT NULL)",
            "CREATE INDEX dedup_seen ON dedup(seen_at)",
            """
            CREATE TABLE subscriptions (
                name text PRIMARY KEY,
                graph_id text,
                resource text NOT NULL,
                change_types text NOT NULL,
                client_state text NOT NULL,
                notification_url text NOT NULL,
                expiration double precision,
                renewed_at double precision,
                managed boolean NOT NULL,
                last_notification_at double precision
            )
            """,
            "CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL)",
        ],
        [
            // Replicas, leases and claims (see `StateStore`): a replica is alive while
            // `alive_until` is ahead of the time the callers pass; a claim holds while its
            // replica is alive. Events and deliveries from before have no replica: any replica
            // routes them, and they are unclaimed.
            "CREATE TABLE replicas (id text PRIMARY KEY, alive_until double precision NOT NULL)",
            "ALTER TABLE events ADD COLUMN accepted_by text",
            "ALTER TABLE deliveries ADD COLUMN claimed_by text",
            "CREATE INDEX deliveries_claimed ON deliveries(claimed_by) WHERE claimed_by IS NOT NULL",
        ],
    ]

    /// Any advisory lock key of the bridge's own: two processes starting at once migrate one after the other.
    static let migrationLockKey: Int64 = 0x6772_6170_6862_7231  // "graphbr1"

    private func migrate() async throws {
        try await transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: self.logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: self.logger)
            var current = 0
            for try await version in try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", logger: self.logger)
                .decode(Int.self)
            {
                current = version
            }
            guard current <= Self.schemaVersion else {
                throw PostgresStoreError(
                    "the database \(self.location.database) holds graph-bridge schema version \(current), newer than the \(Self.schemaVersion) this graph-bridge knows: run the newer graph-bridge, or give this one a database of its own"
                )
            }
            for version in current..<Self.schemaVersion {
                for statement in Self.migrations[version] {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query("INSERT INTO schema_migrations(version) VALUES (\(version + 1))", logger: self.logger)
                self.logger.info("state store schema migrated", metadata: ["bridge.schema_version": "\(version + 1)"])
            }
        }
    }

    /// The schema version the database holds.
    public func storedSchemaVersion() async throws -> Int {
        try await single("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", as: Int.self) ?? 0
    }

    // MARK: Plumbing

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws
    /// (its error is rethrown as is).
    func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await run { try await self.client.transaction(logger: self.logger, body) }
    }

    /// Runs `body`, turning PostgresNIO's errors (whose descriptions hide the server's message) into readable ones.
    func run<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as PSQLError {
            throw PostgresStoreError(error, location: location)
        }
    }

    func single<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type) async throws -> T? {
        try await run {
            var value: T?
            for try await row in try await client.query(query, logger: logger).decode(T.self) { value = row }
            return value
        }
    }

    func rows<each T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as types: (repeat each T).Type) async throws -> [(repeat each T)] {
        try await run {
            var result: [(repeat each T)] = []
            for try await row in try await client.query(query, logger: logger).decode((repeat each T).self) { result.append(row) }
            return result
        }
    }

    private static func body(_ event: BridgeEvent) -> String { String(decoding: event.encoded(), as: UTF8.self) }

    private static func event(_ body: String) throws -> BridgeEvent {
        do {
            return try BridgeEvent(encoded: Array(body.utf8))
        } catch {
            throw PostgresStoreError("a stored event is unreadable: \(error)")
        }
    }

    // MARK: Journal

    /// Goes through the group committer: requests arriving while a batch commits share the next
    /// transaction (``PostgresGroupCommitter``); each returns once its batch has committed.
    public func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        guard !entries.isEmpty else { return [] }
        let outcomes = try await committer.journal(entries)
        let subscriptions = Set(zip(entries, outcomes).filter { $0.1 == .journaled }.map(\.0.event.subscription.name))
        if let last = entries.last?.event.receivedAt {
            await stampLastNotification(subscriptions, at: last)
        }
        return outcomes
    }

    /// What the journal's group committer did since the store opened, and how many requests wait
    /// for its next batch now.
    public var journalCommitStatistics: JournalCommitStatistics { committer.statistics }

    // MARK: Routing

    public func unroutedEvents(limit: Int) async throws -> [PendingEvent] {
        try await unroutedEvents(after: 0, limit: limit)
    }

    /// Events are routed flag by flag here, so an event routed ahead of an earlier one (its
    /// subscription's enrichment finished first) needs nothing more than its own flag.
    public func unroutedEvents(after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        let limit = max(0, limit)
        let rows = try await rows(
            "SELECT seq, body, attachment FROM events WHERE NOT routed AND seq > \(sequence) ORDER BY seq LIMIT \(limit)", as: (Int64, String, String?).self)
        return try rows.map { sequence, body, attachment in
            PendingEvent(sequence: sequence, event: try Self.event(body), attachment: try attachment.map { try JSONParser.parse($0, maxDepth: 256) })
        }
    }

    public func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        let limit = max(0, limit)
        let rows = try await rows("""
            SELECT seq, body, attachment FROM events
            WHERE NOT routed AND seq > \(sequence) AND (accepted_by = \(replica.rawValue) OR accepted_by IS NULL)
            ORDER BY seq LIMIT \(limit)
            """, as: (Int64, String, String?).self)
        return try rows.map { sequence, body, attachment in
            PendingEvent(sequence: sequence, event: try Self.event(body), attachment: try attachment.map { try JSONParser.parse($0, maxDepth: 256) })
        }
    }

    public func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int {
        try await rows("""
            WITH lapsed AS (
                SELECT seq FROM events e
                WHERE NOT routed AND accepted_by IS NOT NULL AND accepted_by <> \(replica.rawValue)
                AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = e.accepted_by AND r.alive_until > \(now.timeIntervalSince1970))
                ORDER BY seq FOR UPDATE SKIP LOCKED
            ), adopted AS (
                UPDATE events e SET accepted_by = \(replica.rawValue) FROM lapsed l WHERE e.seq = l.seq RETURNING 1
            )
            SELECT COUNT(*)::bigint FROM adopted
            """, as: Int.self).first ?? 0
    }

    /// The routing flag flips first (`UPDATE … WHERE NOT routed RETURNING`): a second replica
    /// committing the same event waits for the first's transaction, then finds it routed, and
    /// creates nothing. Rows are locked in sequence order, so two overlapping batches wait for
    /// each other instead of deadlocking.
    @discardableResult
    public func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> {
        guard !events.isEmpty else { return [] }
        let routedSequences = events.map(\.sequence)
        let due = now.timeIntervalSince1970
        return try await transaction { connection in
            var routed: Set<Int64> = []
            for try await sequence in try await connection.query(
                """
                UPDATE events SET routed = true WHERE seq IN (
                    SELECT seq FROM events WHERE seq = ANY(\(routedSequences)) AND NOT routed ORDER BY seq FOR UPDATE
                ) AND NOT routed RETURNING seq
                """, logger: self.logger
            ).decode(Int64.self) {
                routed.insert(sequence)
            }
            // A delivery needs its event: naming one the store does not hold fails the whole call.
            let unflipped = Array(Set(events.filter { !$0.sinks.isEmpty }.map(\.sequence)).subtracting(routed))
            if !unflipped.isEmpty {
                var present: Set<Int64> = []
                for try await sequence in try await connection.query("SELECT seq FROM events WHERE seq = ANY(\(unflipped))", logger: self.logger)
                    .decode(Int64.self)
                {
                    present.insert(sequence)
                }
                if let missing = unflipped.filter({ !present.contains($0) }).min() {
                    throw PostgresStoreError("routing names event \(missing), which the store does not hold")
                }
            }
            var sequences: [Int64] = []
            var sinks: [String] = []
            var createdAt: [Double] = []
            var seen: Set<Int64> = []
            for event in events where routed.contains(event.sequence) && seen.insert(event.sequence).inserted {
                for sink in event.sinks {
                    sequences.append(event.sequence)
                    sinks.append(sink)
                    createdAt.append(event.event.receivedAt.timeIntervalSince1970)
                }
                if event.changed {
                    try await connection.query("UPDATE events SET body = \(Self.body(event.event)) WHERE seq = \(event.sequence)", logger: self.logger)
                }
            }
            if !sequences.isEmpty {
                // WITH ORDINALITY: ids follow the order of the batch.
                try await connection.query("""
                    INSERT INTO deliveries(event_seq, sink, created_at, next_attempt_at)
                    SELECT s, k, c, \(due) FROM unnest(\(sequences)::bigint[], \(sinks)::text[], \(createdAt)::float8[]) WITH ORDINALITY AS u(s, k, c, o)
                    ORDER BY o
                    """, logger: self.logger)
            }
            return routed
        }
    }

    // MARK: Replicas

    /// Also forgets replicas whose lease lapsed a day ago (their claims and events count as
    /// lapsed either way).
    public func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws {
        let seconds = now.timeIntervalSince1970
        try await transaction { connection in
            try await connection.query("DELETE FROM replicas WHERE alive_until < \(seconds - 86_400)", logger: self.logger)
            try await connection.query("""
                INSERT INTO replicas(id, alive_until) VALUES (\(replica.rawValue), \(seconds + lease.seconds))
                ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until
                """, logger: self.logger)
        }
    }

    /// One row per replica: renewing it extends every claim the replica holds. Leases compare
    /// the replicas' clocks, so a clock that differs from the server's by more than a tenth of the
    /// lease is logged (a warning at each renewal while it lasts).
    @discardableResult
    public func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool {
        let seconds = now.timeIntervalSince1970
        let row = try await rows("""
            WITH previous AS (SELECT alive_until FROM replicas WHERE id = \(replica.rawValue)),
            renewed AS (
                INSERT INTO replicas(id, alive_until) VALUES (\(replica.rawValue), \(seconds + lease.seconds))
                ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until RETURNING 1
            )
            SELECT (SELECT alive_until FROM previous), (SELECT COUNT(*)::bigint FROM renewed), extract(epoch FROM clock_timestamp())::float8
            """, as: (Double?, Int, Double).self).first
        if let serverNow = row?.2, abs(serverNow - seconds) > lease.seconds / 10 {
            logger.warning("this replica's clock differs from the PostgreSQL server's: leases compare the replicas' clocks, keep them in sync (NTP)", metadata: [
                "bridge.replica": "\(replica)", "bridge.clock_offset_seconds": "\(String(format: "%.1f", seconds - serverNow))",
            ])
        }
        return (row?.0 ?? -.infinity) > seconds
    }

    public func releaseReplica(_ replica: ReplicaID) async throws {
        try await transaction { connection in
            try await connection.query("UPDATE deliveries SET claimed_by = NULL WHERE claimed_by = \(replica.rawValue)", logger: self.logger)
            try await connection.query("DELETE FROM replicas WHERE id = \(replica.rawValue)", logger: self.logger)
        }
    }

    // MARK: Deliveries

    /// `FOR UPDATE SKIP LOCKED`: replicas claiming at once take different deliveries without
    /// waiting for each other; a row another transaction has just claimed is checked again
    /// once that one commits, and left alone (its claimant is alive).
    public func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] {
        let seconds = now.timeIntervalSince1970
        let rows = try await rows("""
            WITH candidates AS (
                SELECT d.id FROM deliveries d
                WHERE d.sink = \(sink) AND d.status = 0 AND d.next_attempt_at <= \(seconds)
                AND (d.claimed_by IS NULL OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = d.claimed_by AND r.alive_until > \(seconds)))
                AND EXISTS (SELECT 1 FROM replicas me WHERE me.id = \(replica.rawValue) AND me.alive_until > \(seconds))
                ORDER BY d.next_attempt_at, d.id LIMIT \(max(0, limit))
                FOR UPDATE OF d SKIP LOCKED
            ), claimed AS (
                UPDATE deliveries d SET claimed_by = \(replica.rawValue) FROM candidates c WHERE d.id = c.id
                RETURNING d.id, d.attempts, d.created_at, d.next_attempt_at, d.event_seq
            )
            SELECT c.id, c.attempts, c.created_at, e.body FROM claimed c JOIN events e ON e.seq = c.event_seq
            ORDER BY c.next_attempt_at, c.id
            """, as: (Int64, Int, Double, String).self)
        return try rows.map { id, attempts, createdAt, body in
            Delivery(id: id, sink: sink, event: try Self.event(body), attempts: attempts, createdAt: Date(timeIntervalSince1970: createdAt))
        }
    }

    public func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? {
        let seconds = now.timeIntervalSince1970
        // The first claimable delivery, and the earliest lease end of another live replica that
        // holds one of the sink's (a claimed delivery was due when it was claimed). LEAST skips NULLs.
        return try await single("""
            SELECT LEAST(
                (SELECT next_attempt_at FROM deliveries d WHERE sink = \(sink) AND status = 0
                AND (claimed_by IS NULL OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = d.claimed_by AND r.alive_until > \(seconds)))
                ORDER BY next_attempt_at, id LIMIT 1),
                (SELECT MIN(r.alive_until) FROM replicas r WHERE r.alive_until > \(seconds) AND r.id <> \(replica.rawValue)
                AND EXISTS (SELECT 1 FROM deliveries d WHERE d.claimed_by = r.id AND d.sink = \(sink) AND d.status = 0)))
            """, as: Double?.self).flatMap { $0 }.map(Date.init(timeIntervalSince1970:))
    }

    public func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] {
        let rows = try await rows("""
            SELECT d.id, d.attempts, d.created_at, e.body FROM deliveries d JOIN events e ON e.seq = d.event_seq
            WHERE d.sink = \(sink) AND d.status = 0 AND d.next_attempt_at <= \(now.timeIntervalSince1970) AND NOT (d.id = ANY(\(Array(excluding))))
            ORDER BY d.next_attempt_at, d.id LIMIT \(limit)
            """, as: (Int64, Int, Double, String).self)
        return try rows.map { id, attempts, createdAt, body in
            Delivery(id: id, sink: sink, event: try Self.event(body), attempts: attempts, createdAt: Date(timeIntervalSince1970: createdAt))
        }
    }

    public func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? {
        try await single("""
            SELECT next_attempt_at FROM deliveries WHERE sink = \(sink) AND status = 0 AND NOT (id = ANY(\(Array(excluding))))
            ORDER BY next_attempt_at, id LIMIT 1
            """, as: Double.self).map(Date.init(timeIntervalSince1970:))
    }

    public func recordSuccesses(deliveryIDs: [Int64]) async throws {
        guard !deliveryIDs.isEmpty else { return }
        try await execute("DELETE FROM deliveries WHERE id = ANY(\(deliveryIDs))")
    }

    public func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws {
        try await execute("""
            UPDATE deliveries SET attempts = \(attempts), next_attempt_at = \(nextAttemptAt.timeIntervalSince1970), last_error = \(error),
            claimed_by = NULL WHERE id = \(deliveryID)
            """)
    }

    public func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws {
        try await execute("""
            UPDATE deliveries SET status = 1, attempts = \(attempts), last_error = \(error), dead_at = \(date.timeIntervalSince1970),
            claimed_by = NULL WHERE id = \(deliveryID)
            """)
    }

    public func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] {
        let kept = sinks.sorted()
        let rows = try await rows("""
            WITH retired AS (
                UPDATE deliveries SET status = 1, last_error = \(error), dead_at = \(date.timeIntervalSince1970), claimed_by = NULL
                WHERE status = 0 AND NOT (sink = ANY(\(kept))) RETURNING sink
            )
            SELECT sink, COUNT(*)::bigint FROM retired GROUP BY sink
            """, as: (String, Int).self)
        return Dictionary(uniqueKeysWithValues: rows)
    }

    /// One statement in its own (implicit) transaction.
    private func execute(_ query: PostgresQuery) async throws {
        try await run { _ = try await client.query(query, logger: logger).collect() }
    }

    // MARK: Inspection and replay

    public func queueDepths() async throws -> [String: QueueDepth] {
        var depths: [String: QueueDepth] = [:]
        for (sink, status, count) in try await rows(
            "SELECT sink, status::bigint, COUNT(*)::bigint FROM deliveries GROUP BY sink, status", as: (String, Int, Int).self)
        {
            var depth = depths[sink] ?? QueueDepth(pending: 0, dead: 0)
            if status == 0 { depth.pending = count } else { depth.dead = count }
            depths[sink] = depth
        }
        return depths
    }

    public func unroutedCount() async throws -> Int {
        try await single("SELECT COUNT(*)::bigint FROM events WHERE NOT routed", as: Int.self) ?? 0
    }

    public func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage {
        var total = SQL("SELECT COUNT(*)::bigint FROM deliveries d WHERE ")
        Self.condition(selection, table: "d", into: &total)
        var page = SQL("""
            SELECT d.id, d.sink, d.attempts, d.last_error, d.created_at, d.dead_at, e.id, e.subscription
            FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE
            """)
        page.append(" ")
        Self.condition(selection, table: "d", into: &page)
        page.append(" ORDER BY d.id LIMIT ")
        page.bind(max(0, limit))
        let count = try await single(total.query, as: Int.self) ?? 0
        let letters = try await rows(page.query, as: (Int64, String, Int, String?, Double, Double?, String, String).self).map {
            id, sink, attempts, lastError, createdAt, deadAt, eventID, subscription in
            DeadLetter(
                id: id, sink: sink, eventID: eventID, subscription: subscription, attempts: attempts, lastError: lastError ?? "",
                createdAt: Date(timeIntervalSince1970: createdAt), deadAt: Date(timeIntervalSince1970: deadAt ?? 0))
        }
        return DeadLetterPage(letters: letters, total: count)
    }

    public func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int {
        let stamp = now.timeIntervalSince1970
        var statement = SQL("UPDATE deliveries SET status = 0, created_at = ")
        statement.bind(stamp)
        statement.append(", next_attempt_at = ")
        statement.bind(stamp)
        statement.append(", dead_at = NULL, claimed_by = NULL WHERE ")
        Self.condition(selection, table: "deliveries", into: &statement)
        statement.append(" RETURNING id")
        return try await changeDeadLetters(selection, statement.query)
    }

    public func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        var statement = SQL("DELETE FROM deliveries WHERE ")
        Self.condition(selection, table: "deliveries", into: &statement)
        statement.append(" RETURNING id")
        return try await changeDeadLetters(selection, statement.query)
    }

    /// Runs `statement` (a change to the selection's dead letters that returns the ids it changed)
    /// in a transaction that fails, changing nothing, when any id of the selection is not one of them.
    private func changeDeadLetters(_ selection: DeadLetterSelection, _ statement: PostgresQuery) async throws -> Int {
        try await transaction { connection in
            var changed: Set<Int64> = []
            for try await id in try await connection.query(statement, logger: self.logger).decode(Int64.self) { changed.insert(id) }
            if let ids = selection.ids {
                var unknown: [Int64] = []
                for id in ids where !changed.contains(id) && !unknown.contains(id) { unknown.append(id) }
                if !unknown.isEmpty { throw UnknownDeadLetters(ids: unknown) }
            }
            return changed.count
        }
    }

    /// Appends the SQL condition on `table` (the deliveries) for a selection's dead letters.
    private static func condition(_ selection: DeadLetterSelection, table: String, into sql: inout SQL) {
        sql.append("\(table).status = 1")
        if let ids = selection.ids {
            sql.append(" AND \(table).id = ANY(")
            sql.bind(ids)
            sql.append(")")
        }
        if let sink = selection.sink {
            sql.append(" AND \(table).sink = ")
            sql.bind(sink)
        }
        if let since = selection.deadSince {
            sql.append(" AND \(table).dead_at >= ")
            sql.bind(since.timeIntervalSince1970)
        }
        if let before = selection.deadBefore {
            sql.append(" AND \(table).dead_at < ")
            sql.bind(before.timeIntervalSince1970)
        }
    }

    public func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {
        let delivered = date.timeIntervalSince1970
        let dedup = deduplicationBefore.timeIntervalSince1970
        try await transaction { connection in
            try await connection.query("""
                DELETE FROM events WHERE routed AND received_at < \(delivered)
                AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event_seq = events.seq)
                """, logger: self.logger)
            try await connection.query("DELETE FROM dedup WHERE seen_at < \(dedup)", logger: self.logger)
        }
    }

    // MARK: Subscriptions and settings

    public func subscriptionRecords() async throws -> [SubscriptionRecord] {
        try await rows("""
            SELECT name, graph_id, resource, change_types, client_state, notification_url, expiration, renewed_at, managed, last_notification_at
            FROM subscriptions ORDER BY name
            """, as: (String, String?, String, String, String, String, Double?, Double?, Bool, Double?).self).map {
            name, graphID, resource, changeTypes, clientState, notificationURL, expiration, renewedAt, managed, last in
            SubscriptionRecord(
                name: name, graphID: graphID, resource: resource, changeTypes: changeTypes, clientState: clientState,
                notificationURL: notificationURL, expiration: expiration.map(Date.init(timeIntervalSince1970:)),
                renewedAt: renewedAt.map(Date.init(timeIntervalSince1970:)), managed: managed,
                lastNotificationAt: last.map(Date.init(timeIntervalSince1970:)))
        }
    }

    public func saveSubscription(_ record: SubscriptionRecord) async throws {
        try await execute("""
            INSERT INTO subscriptions(name, graph_id, resource, change_types, client_state, notification_url, expiration, renewed_at, managed, last_notification_at)
            VALUES (\(record.name), \(record.graphID), \(record.resource), \(record.changeTypes), \(record.clientState), \(record.notificationURL),
                    \(record.expiration?.timeIntervalSince1970), \(record.renewedAt?.timeIntervalSince1970), \(record.managed),
                    \(record.lastNotificationAt?.timeIntervalSince1970))
            ON CONFLICT (name) DO UPDATE SET graph_id = EXCLUDED.graph_id, resource = EXCLUDED.resource, change_types = EXCLUDED.change_types,
              client_state = EXCLUDED.client_state, notification_url = EXCLUDED.notification_url, expiration = EXCLUDED.expiration,
              renewed_at = EXCLUDED.renewed_at, managed = EXCLUDED.managed,
              last_notification_at = COALESCE(EXCLUDED.last_notification_at, subscriptions.last_notification_at)
            """)
    }

    public func deleteSubscription(name: String) async throws {
        try await execute("DELETE FROM subscriptions WHERE name = \(name)")
    }

    public func setting(_ key: String) async throws -> String? {
        try await single("SELECT value FROM settings WHERE key = \(key)", as: String.self)
    }

    public func setSetting(_ key: String, to value: String?) async throws {
        if let value {
            try await execute("INSERT INTO settings(key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        } else {
            try await execute("DELETE FROM settings WHERE key = \(key)")
        }
    }

    // MARK: StoreInspection

    public func recentEvents(limit: Int) async throws -> [BridgeEvent] {
        try await rows("SELECT body FROM events ORDER BY seq DESC LIMIT \(limit)", as: String.self).map { try Self.event($0) }
    }

    public func eventCount() async throws -> Int {
        try await single("SELECT COUNT(*)::bigint FROM events", as: Int.self) ?? 0
    }

    public func ping() async throws {
        _ = try await single("SELECT 1::bigint", as: Int.self)
    }
}

/// A statement put together piece by piece, each value a bind parameter.
struct SQL {
    private var text: String
    private var binds = PostgresBindings()

    init(_ text: String) { self.text = text }

    mutating func append(_ more: String) { text += more }

    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value) {
        binds.append(value)
        text += "$\(binds.count)"
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: text, binds: binds) }
}

/// An error of the PostgreSQL store, with the server's message where there is one (never the password).
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) { self.description = description }

    init(_ error: PSQLError, location: PostgresLocation) {
        if let info = error.serverInfo, let message = info[.message] {
            let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            description = "PostgreSQL at \(location): \(message)\(state)"
        } else if let underlying = error.underlying {
            description = "PostgreSQL at \(location): \(error.code): \(underlying)"
        } else {
            description = "PostgreSQL at \(location): \(error.code)"
        }
    }
}
