public import Foundation

/// When to try a failed delivery again: exponential backoff with equal jitter, `Retry-After`
/// honoured, and a dead letter once the event is older than `maxAge`. Pure logic.
public struct RetrySchedule: Sendable {
    public var policy: RetryPolicy

    public init(policy: RetryPolicy) { self.policy = policy }

    public enum Decision: Sendable, Equatable {
        case retry(at: Date)
        case deadLetter
    }

    /// The backoff before try number `attempts + 1`, before jitter: initial × 2^(attempts−1), capped.
    public func backoff(afterAttempts attempts: Int) -> Duration {
        let exponent = max(0, min(attempts - 1, 40))
        let initial = policy.initialBackoff.seconds
        let capped = min(initial * pow(2, Double(exponent)), policy.maxBackoff.seconds)
        return .seconds(capped)
    }

    /// Decides after a retryable failure. `random` is in 0..<1 (injected so tests are exact).
    public func decide(attempts: Int, createdAt: Date, now: Date, retryAfter: Duration?, random: Double) -> Decision {
        let age = now.timeIntervalSince(createdAt)
        if age >= policy.maxAge.seconds { return .deadLetter }
        let base = backoff(afterAttempts: attempts).seconds
        var delay = base / 2 + base / 2 * random  // equal jitter: never less than half the backoff
        if let retryAfter { delay = max(delay, min(retryAfter.seconds, policy.maxAge.seconds)) }
        let next = now.addingTimeInterval(delay)
        // The last try happens at maxAge rather than never.
        let deadline = createdAt.addingTimeInterval(policy.maxAge.seconds)
        return .retry(at: min(next, deadline))
    }
}

extension Duration {
    /// This duration in seconds, as a Double.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
