import BridgeCore
import BridgeSettings
import Foundation
import Logging
import PostgresNIO

/// The journal's SQL: a batch of requests in one transaction (for ``PostgresGroupCommitter``), or
/// one request in a transaction of its own (the batch's fallback). Both claim deduplication keys
/// with `INSERT … ON CONFLICT (key) DO UPDATE … WHERE dedup.seen_at < cutoff`, in key order, so
/// callers sharing keys (other replicas) wait for each other instead of deadlocking, and both give
/// every entry the outcome it would have had alone, in arrival order.
struct PostgresJournalWriter: Sendable {
    let client: PostgresClient
    let location: PostgresLocation
    let logger: Logger

    private static var windowSeconds: Double { DeliveryEngine.deduplicationWindow.seconds }

    /// Every request's entries in one transaction: per round, one multi-row insert of keys, then one
    /// multi-row insert of the new events, then one `COMMIT`. Round `n` holds the `n`-th entry of each
    /// key in the batch (an `INSERT … ON CONFLICT DO UPDATE` may not touch one row twice), so an
    /// entry whose key an earlier entry of the batch claimed finds it claimed, as it would alone.
    /// Throws ``PostgresBatchError``.
    func batch(_ groups: [[JournalEntry]]) async throws -> [[JournalOutcome]] {
        let entries = groups.flatMap { $0 }
        var rounds: [[Int]] = []
        var occurrences: [String: Int] = [:]
        for (index, entry) in entries.enumerated() {
            guard let key = entry.deduplicationKey else { continue }
            let round = occurrences[key, default: 0]
            occurrences[key] = round + 1
            if round == rounds.count { rounds.append([]) }
            rounds[round].append(index)
        }
        let outcomes: [JournalOutcome]
        do {
            outcomes = try await client.transaction(logger: logger) { connection in
                var outcomes = Array(repeating: JournalOutcome.journaled, count: entries.count)
                for round in rounds {
                    let ordered = round.sorted { (entries[$0].deduplicationKey!, $0) < (entries[$1].deduplicationKey!, $1) }
                    let keys = ordered.map { entries[$0].deduplicationKey! }
                    let seen = ordered.map { entries[$0].event.receivedAt.timeIntervalSince1970 }
                    // The cutoff is seen_at minus the window, as the single-request path computes it.
                    var claimed: Set<String> = []
                    for try await key in try await connection.query(
                        """
                        INSERT INTO dedup(key, seen_at)
                        SELECT k, s FROM unnest(\(keys)::text[], \(seen)::float8[]) WITH ORDINALITY AS u(k, s, o) ORDER BY o
                        ON CONFLICT (key) DO UPDATE SET seen_at = EXCLUDED.seen_at WHERE dedup.seen_at < EXCLUDED.seen_at - \(Self.windowSeconds)
                        RETURNING key
                        """, logger: logger
                    ).decode(String.self) {
                        claimed.insert(key)
                    }
                    for index in ordered where !claimed.contains(entries[index].deduplicationKey!) { outcomes[index] = .duplicate }
                }
                let journaled = entries.indices.filter { outcomes[$0] == .journaled }
                if !journaled.isEmpty {
                    try await insertEvents(journaled.map { entries[$0] }, on: connection)
                }
                return outcomes
            }
        } catch let error as PSQLError {
            throw PostgresBatchError(underlying: PostgresStoreError(error, location: location), retryAlone: Self.isStatementFailure(error))
        } catch {
            throw PostgresBatchError(underlying: error, retryAlone: false)
        }
        var answers: [[JournalOutcome]] = []
        var start = 0
        for group in groups {
            answers.append(Array(outcomes[start..<start + group.count]))
            start += group.count
        }
        return answers
    }

    /// One request's entries in a transaction of their own.
    func alone(_ entries: [JournalEntry]) async throws -> [JournalOutcome] {
        // Keys are claimed in key order (then arrival order): two calls sharing keys then wait for
        // each other instead of deadlocking.
        let keyed = entries.indices.filter { entries[$0].deduplicationKey != nil }
            .sorted { (entries[$0].deduplicationKey!, $0) < (entries[$1].deduplicationKey!, $1) }
        do {
            return try await client.transaction(logger: logger) { connection in
                var outcomes = Array(repeating: JournalOutcome.journaled, count: entries.count)
                for index in keyed {
                    let key = entries[index].deduplicationKey!
                    let seen = entries[index].event.receivedAt.timeIntervalSince1970
                    let cutoff = seen - Self.windowSeconds
                    let claimed = try await connection.query(
                        """
                        INSERT INTO dedup(key, seen_at) VALUES (\(key), \(seen))
                        ON CONFLICT (key) DO UPDATE SET seen_at = EXCLUDED.seen_at WHERE dedup.seen_at < \(cutoff)
                        RETURNING 1
                        """, logger: logger
                    ).collect()
                    if claimed.isEmpty { outcomes[index] = .duplicate }
                }
                let journaled = entries.indices.filter { outcomes[$0] == .journaled }
                if !journaled.isEmpty {
                    try await insertEvents(journaled.map { entries[$0] }, on: connection)
                }
                return outcomes
            }
        } catch let error as PSQLError {
            throw PostgresStoreError(error, location: location)
        }
    }

    /// One multi-row insert; `WITH ORDINALITY`: sequence numbers follow the order of `entries`.
    private func insertEvents(_ entries: [JournalEntry], on connection: PostgresConnection) async throws {
        // PostgresNIO encodes no arrays of optionals: a flag array says which values are there.
        let ids = entries.map(\.event.id)
        let received = entries.map { $0.event.receivedAt.timeIntervalSince1970 }
        let subscriptions = entries.map(\.event.subscription.name)
        let bodies = entries.map { String(decoding: $0.event.encoded(), as: UTF8.self) }
        let attachments = entries.map { $0.attachment?.serializedString ?? "" }
        let hasAttachment = entries.map { $0.attachment != nil }
        let replicas = entries.map { $0.replica?.rawValue ?? "" }
        let hasReplica = entries.map { $0.replica != nil }
        try await connection.query(
            """
            INSERT INTO events(id, received_at, subscription, body, attachment, accepted_by)
            SELECT i, r, s, b, CASE WHEN ha THEN a END, CASE WHEN hp THEN p END
            FROM unnest(\(ids)::text[], \(received)::float8[], \(subscriptions)::text[], \(bodies)::text[], \(attachments)::text[],
                        \(hasAttachment)::bool[], \(replicas)::text[], \(hasReplica)::bool[]) WITH ORDINALITY AS u(i, r, s, b, a, ha, p, hp, o)
            ORDER BY o
            """, logger: logger)
    }

    /// The server refused a statement for what it holds (a constraint, invalid data, a deadlock or
    /// serialization failure), not for the connection or the server's own state (SQLSTATE classes
    /// 08 connection, 53 resources such as a full disk, 57 shutdown, 58 and XX system errors): the
    /// batch's requests may then succeed one by one.
    static func isStatementFailure(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return !["08", "53", "57", "58", "XX"].contains(String(state.prefix(2)))
    }
}
