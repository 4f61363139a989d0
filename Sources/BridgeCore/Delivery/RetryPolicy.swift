/// `retry:` (and a sink's own `retry:`): how failed deliveries are retried.
public struct RetryPolicy: Sendable, Hashable {
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// After this long since the event arrived a failing delivery becomes a dead letter.
    public var maxAge: Duration

    public static let `default` = RetryPolicy(initialBackoff: .seconds(1), maxBackoff: .seconds(300), maxAge: .seconds(86_400))

    public init(initialBackoff: Duration, maxBackoff: Duration, maxAge: Duration) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxAge = maxAge
    }
}
