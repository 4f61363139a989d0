import BridgeCore

/// The in-memory store's replicas, leases and claims: the rules the SQLite and PostgreSQL stores
/// keep in tables. A value, used under the store's lock.
struct LeaseTable: Sendable {
    /// Replica to the date its lease runs out (seconds since 1970).
    private(set) var aliveUntil: [ReplicaID: Double] = [:]
    /// Delivery id to the replica that claimed it.
    private(set) var claims: [Int64: ReplicaID] = [:]

    init() {}

    /// Whether `replica`'s lease holds at `now`.
    func isLive(_ replica: ReplicaID, at now: Double) -> Bool {
        (aliveUntil[replica] ?? -.infinity) > now
    }

    /// Whether a live replica holds `delivery` at `now`.
    func isHeld(_ delivery: Int64, at now: Double) -> Bool {
        claims[delivery].map { isLive($0, at: now) } ?? false
    }

    /// When a claim on `delivery` can next be taken by `replica`: nil when none holds it or its
    /// holder's lease has run out at `now`, else the holder's lease end (`.infinity` for
    /// `replica`'s own claim: never by itself).
    func claimableAt(_ delivery: Int64, by replica: ReplicaID, now: Double) -> Double? {
        guard let holder = claims[delivery], isLive(holder, at: now) else { return nil }
        return holder == replica ? .infinity : aliveUntil[holder]
    }

    /// Starts or extends a lease; returns whether it was live before.
    @discardableResult
    mutating func renew(_ replica: ReplicaID, now: Double, lease: Duration) -> Bool {
        let wasLive = isLive(replica, at: now)
        aliveUntil[replica] = now + lease.seconds
        return wasLive
    }

    /// Ends `replica`'s lease and frees its claims.
    mutating func release(_ replica: ReplicaID) {
        aliveUntil[replica] = nil
        claims = claims.filter { $0.value != replica }
    }

    /// Claims `delivery` for `replica` unless a live replica holds it; returns whether it did.
    mutating func claim(_ delivery: Int64, for replica: ReplicaID, now: Double) -> Bool {
        guard isLive(replica, at: now), !isHeld(delivery, at: now) else { return false }
        claims[delivery] = replica
        return true
    }

    /// The delivery's outcome is recorded: its claim ends.
    mutating func unclaim(_ delivery: Int64) {
        claims[delivery] = nil
    }
}
