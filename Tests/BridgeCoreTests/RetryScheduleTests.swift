import BridgeCore
import Foundation
import Testing

@Suite("Retry schedule")
struct RetryScheduleTests {
    let schedule = RetrySchedule(policy: RetryPolicy(initialBackoff: .seconds(1), maxBackoff: .seconds(60), maxAge: .seconds(3600)))
    let created = Date(timeIntervalSince1970: 1_000_000)

    @Test("backoff doubles from initialBackoff and stops at maxBackoff")
    func exponential() {
        #expect(schedule.backoff(afterAttempts: 1) == .seconds(1))
        #expect(schedule.backoff(afterAttempts: 2) == .seconds(2))
        #expect(schedule.backoff(afterAttempts: 5) == .seconds(16))
        #expect(schedule.backoff(afterAttempts: 7) == .seconds(60))
        #expect(schedule.backoff(afterAttempts: 1000) == .seconds(60))
    }

    @Test("jitter keeps the delay between half and all of the backoff")
    func jitter() {
        let now = created.addingTimeInterval(10)
        #expect(schedule.decide(attempts: 3, createdAt: created, now: now, retryAfter: nil, random: 0) == .retry(at: now.addingTimeInterval(2)))
        #expect(schedule.decide(attempts: 3, createdAt: created, now: now, retryAfter: nil, random: 0.5) == .retry(at: now.addingTimeInterval(3)))
        #expect(schedule.decide(attempts: 3, createdAt: created, now: now, retryAfter: nil, random: 0.999_999).retryDelay(from: now)! < 4.0001)
    }

    @Test("Retry-After is honoured when longer than the backoff")
    func retryAfter() {
        let now = created.addingTimeInterval(10)
        #expect(schedule.decide(attempts: 1, createdAt: created, now: now, retryAfter: .seconds(120), random: 0) == .retry(at: now.addingTimeInterval(120)))
        #expect(schedule.decide(attempts: 1, createdAt: created, now: now, retryAfter: .milliseconds(10), random: 0) == .retry(at: now.addingTimeInterval(0.5)))
    }

    @Test("past maxAge the delivery becomes a dead letter; the last try is at maxAge")
    func maxAge() {
        #expect(schedule.decide(attempts: 30, createdAt: created, now: created.addingTimeInterval(3600), retryAfter: nil, random: 0) == .deadLetter)
        let nearEnd = created.addingTimeInterval(3590)
        #expect(schedule.decide(attempts: 30, createdAt: created, now: nearEnd, retryAfter: nil, random: 0) == .retry(at: created.addingTimeInterval(3600)))
    }
}

extension RetrySchedule.Decision {
    func retryDelay(from now: Date) -> Double? {
        if case .retry(let at) = self { return at.timeIntervalSince(now) }
        return nil
    }
}
