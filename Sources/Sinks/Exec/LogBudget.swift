/// A token bucket that bounds how many lines per second reach the log; counts what it refused.
/// Times are offsets on the supervisor's clock (``PluginProcess/elapsed``).
struct LogBudget: Sendable {
    let capacity: Double
    let perSecond: Double
    private var tokens: Double
    private var last: Duration?
    /// Lines refused since the last report.
    private(set) var suppressed = 0

    init(perSecond: Int, burst: Int) {
        self.perSecond = Double(max(1, perSecond))
        self.capacity = Double(max(1, burst))
        self.tokens = capacity
    }

    /// Whether one more line may be logged at `now`. A refusal is counted in ``suppressed``.
    mutating func allow(at now: Duration) -> Bool {
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
