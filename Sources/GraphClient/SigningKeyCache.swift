import Foundation
import _CryptoExtras

/// Keeps the authority's signing keys between notifications. A `kid` it doesn't know triggers a
/// refetch (keys rotate), but at most once per ``minimumRefetchInterval`` so forged tokens with
/// made-up ids cannot make the bridge hammer the authority; keys older than ``maximumAge`` are
/// refetched anyway so a withdrawn key stops being trusted. After a failed fetch the next try waits
/// ``failureBackoff``. Concurrent callers share one fetch.
actor SigningKeyCache {
    let source: any SigningKeySource
    let minimumRefetchInterval: TimeInterval
    let maximumAge: TimeInterval
    let failureBackoff: TimeInterval
    let now: @Sendable () -> Date

    private var current: PublishedSigningKeys?
    private var fetchedAt: Date?
    private var failedAt: Date?
    private var inFlight: Task<PublishedSigningKeys, any Error>?

    init(
        source: any SigningKeySource, minimumRefetchInterval: TimeInterval, maximumAge: TimeInterval, failureBackoff: TimeInterval,
        now: @escaping @Sendable () -> Date
    ) {
        self.source = source
        self.minimumRefetchInterval = minimumRefetchInterval
        self.maximumAge = maximumAge
        self.failureBackoff = failureBackoff
        self.now = now
    }

    /// The key `kid` names, and the tenant id the authority published with it.
    func key(for kid: String) async throws(RichNotificationError) -> (key: _RSA.Signing.PublicKey, tenantID: String?) {
        let time = now()
        let stale = fetchedAt.map { time.timeIntervalSince($0) >= maximumAge } ?? true
        if let current, let key = current.keys.keys[kid], !stale { return (key, current.tenantID) }

        let refetchAllowed = fetchedAt.map { time.timeIntervalSince($0) >= minimumRefetchInterval } ?? true
        let backingOff = failedAt.map { time.timeIntervalSince($0) < failureBackoff } ?? false
        if refetchAllowed && !backingOff {
            await refresh()
        }
        if let current, let key = current.keys.keys[kid] { return (key, current.tenantID) }
        if current == nil {
            throw .signingKeysUnavailable(
                "the authority's signing keys could not be fetched (\(lastFailure ?? "no answer yet")); next try within \(Int(failureBackoff)) s")
        }
        throw .unknownKey(kid)
    }

    private func refresh() async {
        let task: Task<PublishedSigningKeys, any Error>
        if let inFlight {
            task = inFlight
        } else {
            let source = self.source
            task = Task { try await source.fetchSigningKeys() }
            inFlight = task
        }
        do {
            let keys = try await task.value
            if inFlight == task {
                current = keys
                fetchedAt = now()
                failedAt = nil
                lastFailure = nil
            }
        } catch {
            if inFlight == task {
                failedAt = now()
                lastFailure = "\(error)"
            }
        }
        if inFlight == task { inFlight = nil }
    }

    /// Why the last fetch failed, for the log (nil after a success).
    private(set) var lastFailure: String?

    /// How many keys are cached, for tests and the log.
    var keyCount: Int { current?.keys.keys.count ?? 0 }
}
