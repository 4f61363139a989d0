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

/// A token bucket that bounds how many lines per second reach the log; counts what it refused.
struct LogBudget: Sendable {
    let capacity: Double
    let perSecond: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant?
    /// Lines refused since the last report.
    private(set) var suppressed = 0

    init(perSecond: Int, burst: Int) {
        self.perSecond = Double(max(1, perSecond))
        self.capacity = Double(max(1, burst))
        self.tokens = capacity
    }

    /// Whether one more line may be logged at `now`. A refusal is counted in ``suppressed``.
    mutating func allow(at now: ContinuousClock.Instant) -> Bool {
        if let last {
            let elapsed = now - last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(capacity, tokens + seconds * perSecond)
        }
        last = now
        if tokens >= 1 {
            tokens -= 1
            return true
        }
        suppressed += 1
        return false
    }

    /// The refusals not yet reported, and forgets them.
    mutating func takeSuppressed() -> Int {
        defer { suppressed = 0 }
        return suppressed
    }
}
