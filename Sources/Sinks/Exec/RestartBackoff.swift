/// How long to wait before starting the plugin again: `initial`, doubling up to `maximum`; back to
/// `initial` once a child has stayed up for `stableAfter`.
struct RestartBackoff: Sendable {
    let initial: Duration
    let maximum: Duration
    let stableAfter: Duration
    private var next: Duration

    init(initial: Duration, maximum: Duration, stableAfter: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.stableAfter = stableAfter
        self.next = initial
    }

    /// The delay before the next start. `uptime` is how long the last child ran (nil: it never started).
    mutating func delay(afterUptime uptime: Duration?) -> Duration {
        if let uptime, uptime >= stableAfter { next = initial }
        let delay = next
        next = min(next * 2, maximum)
        return delay
    }
}
