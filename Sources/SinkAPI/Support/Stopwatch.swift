extension Clock where Duration == Swift.Duration {
    /// Time on this clock since the call, each time the returned closure is asked. Code that
    /// measures intervals keeps one instead of an instant of a clock it holds as `any Clock`
    /// (whose instants cannot be stored or subtracted); a test moves an injected clock.
    public func stopwatch() -> @Sendable () -> Swift.Duration {
        let origin = now
        return { origin.duration(to: self.now) }
    }
}
