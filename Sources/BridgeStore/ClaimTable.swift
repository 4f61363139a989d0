import Synchronization

/// The SQLite store's delivery claims, in memory.
///
/// A claim says which replica is delivering a delivery, so no other live replica takes it, and it
/// lasts until the delivery's outcome is durable. A SQLite file serves one process at a time (the
/// runner holds its lock), and a replica that registers frees every earlier replica's claims: a
/// claim never outlives the process that made it, so writing it to the file bought nothing but a
/// commit (and an `fdatasync`) per claim and two B-tree pages per delivery. Here it is a map from
/// delivery id to the claiming replica and its sink; the file's `claimed_by` column stays empty
/// (older files are cleared when a replica registers).
final class ClaimTable: Sendable {
    struct Claim: Sendable {
        var replica: String
        var sink: String
    }

    private let claims = Mutex<[Int64: Claim]>([:])

    /// Claims for `replica` up to `limit` deliveries of `sink` that no live replica holds, oldest
    /// due first; returns their ids. `live` reads the replicas whose lease holds, `candidates(n)`
    /// the first `n` due deliveries of the sink, both in one read transaction of the caller's.
    ///
    /// Both reads run under the table's lock, which ``end(_:)`` takes after an outcome's commit: a
    /// read that began before that commit (and still sees the delivery due) finds it held, and one
    /// that begins after it sees the outcome. Without that, a snapshot taken just before a success
    /// committed could hand out the delivery again once its claim had ended. The reads are two
    /// indexed queries over a few dozen rows.
    func claim(sink: String, replica: String, limit: Int, live: () throws -> Set<String>, candidates: (Int) throws -> [Int64]) rethrows -> [Int64] {
        try claims.withLock { claims in
            let live = try live()
            guard live.contains(replica) else { return [] }
            var held = 0
            for claim in claims.values where claim.sink == sink && live.contains(claim.replica) { held += 1 }
            var taken: [Int64] = []
            for id in try candidates(limit + held) where taken.count < limit {
                if let holder = claims[id], live.contains(holder.replica) { continue }
                claims[id] = Claim(replica: replica, sink: sink)
                taken.append(id)
            }
            return taken
        }
    }

    /// The deliveries of `sink` held by one of `live` (replica ids).
    func held(sink: String, live: Set<String>) -> Set<Int64> {
        claims.withLock { claims in
            var held: Set<Int64> = []
            for (id, claim) in claims where claim.sink == sink && live.contains(claim.replica) { held.insert(id) }
            return held
        }
    }

    /// The delivery's outcome is durable: its claim ends.
    func end(_ id: Int64) {
        _ = claims.withLock { $0.removeValue(forKey: id) }
    }

    /// Ends the claims of these deliveries.
    func end<S: Sequence>(_ ids: S) where S.Element == Int64 {
        claims.withLock { claims in for id in ids { claims.removeValue(forKey: id) } }
    }

    /// Ends every claim of `replica`.
    func release(_ replica: String) {
        claims.withLock { claims in claims = claims.filter { $0.value.replica != replica } }
    }

    /// Ends every claim not held by `replica`.
    func keepOnly(_ replica: String) {
        claims.withLock { claims in claims = claims.filter { $0.value.replica == replica } }
    }

    /// Ends every claim on a delivery of a sink not in `sinks`.
    func endAll(exceptFor sinks: Set<String>) {
        claims.withLock { claims in claims = claims.filter { sinks.contains($0.value.sink) } }
    }
}
