/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
///
/// Only for state that no event announces: a line in a file a child process writes, a row its
/// store holds. Where the code under test signals (a log line, a listener's readiness, a sink's
/// delivery, a process's exit), await that instead. Every use asserts the result with `#expect`,
/// so a condition that never holds fails the test after `timeout` rather than hanging it.
public func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
