public import BridgeCore
public import Foundation

/// Time as the ``SubscriptionManager`` sees it: the wall-clock date its decisions compare with
/// Graph's expiry times (renewal at half the lifetime, retry backoff, the 4 h outage limit), and
/// the waits of its keepers, which a lifecycle request cuts short. ``SystemUpkeepClock`` in the
/// bridge; tests give a clock they move forward, so renewals and retries hours apart are tested
/// without waiting for them.
public protocol UpkeepClock: Sendable {
    /// The current date.
    var now: Date { get }
    /// Returns after `duration`, or earlier when `doorbell` rings (a ring that came before counts)
    /// or the task is cancelled.
    func sleep(for duration: Duration, orUntilRung doorbell: Doorbell) async
}

/// The system's clock: `Date()` and real waits.
public struct SystemUpkeepClock: UpkeepClock {
    public init() {}

    public var now: Date { Date() }

    public func sleep(for duration: Duration, orUntilRung doorbell: Doorbell) async {
        await doorbell.wait(timeout: duration)
    }
}
