import Synchronization

/// Lets at most one log line of a kind through per interval; the lines held back in between are
/// counted and handed to the next line of that kind that gets through. Lines that anyone on the
/// internet can cause (a dropped notification, a malformed body) go through one, so that they
/// cannot flood the log.
///
/// Time is injected: `now` is `ContinuousClock.now` in the bridge, a value a test moves forward.
public final class LogRateLimiter: Sendable {
    /// What ``admit(_:)`` decided.
    public enum Decision: Sendable, Hashable {
        /// Log the line, and say that `suppressed` lines of its kind were held back before it.
        case log(suppressed: Int)
        /// Do not log it (it is counted for the next one).
        case suppress
    }

    private struct Kind {
        var lastLogged: ContinuousClock.Instant
        var suppressed: Int
    }

    let interval: Duration
    let now: @Sendable () -> ContinuousClock.Instant
    private let kinds = Mutex<[String: Kind]>([:])

    /// - Parameters:
    ///   - interval: at most one line of a kind per this much time. Default one second.
    ///   - now: the clock.
    public init(interval: Duration = .seconds(1), now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.interval = interval
        self.now = now
    }

    /// Whether a line of `kind` may be logged now.
    public func admit(_ kind: String) -> Decision {
        let now = self.now()
        return kinds.withLock { kinds in
            if var state = kinds[kind], now - state.lastLogged < interval {
                state.suppressed += 1
                kinds[kind] = state
                return .suppress
            }
            let suppressed = kinds[kind]?.suppressed ?? 0
            kinds[kind] = Kind(lastLogged: now, suppressed: 0)
            return .log(suppressed: suppressed)
        }
    }
}
