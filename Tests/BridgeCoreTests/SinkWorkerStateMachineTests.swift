import Foundation
import Testing

@testable import BridgeCore

/// Every decision of the sink worker, without a store, a sink or a clock: events in, actions out.
@Suite("Sink worker state machine")
struct SinkWorkerStateMachineTests {
    typealias Machine = SinkWorkerStateMachine
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let policy = RetryPolicy(initialBackoff: .seconds(10), maxBackoff: .seconds(60), maxAge: .seconds(3600))

    static func machine(concurrency: Int = 2, claimBatch: Int = 8, claimCeiling: Int? = nil, batchLimit: Int = 1) -> Machine {
        Machine(
            concurrency: concurrency, claimBatch: claimBatch, claimCeiling: claimCeiling, batchLimit: batchLimit, schedule: RetrySchedule(policy: policy),
            shutdownGrace: .seconds(5))
    }

    static func delivery(_ id: Int64, attempts: Int = 0, createdAt: Date = now) -> Delivery {
        Delivery(id: id, sink: "s", event: makeEvent(id: "event-\(id)", at: createdAt), attempts: attempts, createdAt: createdAt)
    }

    let now = Self.now

    @Test("a turn with a free slot and nothing claimed asks for a claim of claimBatch")
    func claimsWhenIdle() {
        var machine = Self.machine()
        #expect(machine.handle(.turn(stopping: false), now: now) == [.claim(limit: 8)])
    }

    @Test("claimed deliveries start up to concurrency, the rest wait for a slot, and the next turn starts them without a claim")
    func startsUpToConcurrency() {
        var machine = Self.machine(concurrency: 2)
        let (a, b, c) = (Self.delivery(1), Self.delivery(2), Self.delivery(3))
        _ = machine.handle(.turn(stopping: false), now: now)
        #expect(machine.handle(.claimed([a, b, c]), now: now) == [.start(a), .start(b), .startWaiter(.seconds(30)), .awaitStep])
        #expect(Array(machine.buffered) == [c])
        #expect(machine.handle(.turn(stopping: false), now: now) == [.awaitStep], "no slot free: nothing to do")
        #expect(
            machine.handle(.delivered(1, .success(took: .milliseconds(3))), now: now) == [
                .recordSuccesses([Machine.Success(delivery: a, took: .milliseconds(3))], failures: 0, after: .zero)
            ])
        #expect(machine.recording == [1])
        #expect(machine.handle(.turn(stopping: false), now: now) == [.start(c), .awaitStep])
        #expect(machine.inFlight.keys.sorted() == [2, 3])
    }

    @Test("with slots still free after a claim it asks when the next is due, and waits until then, at most 30 s")
    func waitsUntilNextDue() {
        for (due, wait) in [(5.0, Duration.seconds(5)), (100, .seconds(30)), (-1, .milliseconds(1))] {
            var machine = Self.machine(concurrency: 2)
            _ = machine.handle(.turn(stopping: false), now: now)
            let a = Self.delivery(1)
            #expect(machine.handle(.claimed([a]), now: now) == [.start(a), .findNextDue])
            let actions = machine.handle(.nextDue(now.addingTimeInterval(due)), now: now)
            #expect(actions == [.startWaiter(wait), .awaitStep], "due in \(due) s")
        }
        var idle = Self.machine()
        _ = idle.handle(.turn(stopping: false), now: now)
        #expect(idle.handle(.claimed([]), now: now) == [.findNextDue])
        #expect(idle.handle(.nextDue(nil), now: now) == [.startWaiter(.seconds(30)), .awaitStep], "nothing queued: read again in 30 s")
    }

    @Test("due now yet nothing claimed (another replica took it, or the lease lapsed) waits a second, not a busy loop")
    func contended() {
        var machine = Self.machine()
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        #expect(machine.handle(.nextDue(now.addingTimeInterval(-1)), now: now) == [.startWaiter(.seconds(1)), .awaitStep])
    }

    @Test("the waiter is rung when something falls due before it wakes, and a new one starts after it woke")
    func ringsWaiter() {
        var machine = Self.machine()
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        #expect(machine.handle(.nextDue(nil), now: now) == [.startWaiter(.seconds(30)), .awaitStep])
        // A later turn (a retry was written): due in 5 s, the waiter sleeps 30.
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        #expect(machine.handle(.nextDue(now.addingTimeInterval(5)), now: now) == [.ringWaiter, .awaitStep])
        // Due after the waiter wakes anyway: left alone.
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        #expect(machine.handle(.nextDue(now.addingTimeInterval(40)), now: now) == [.awaitStep])
        #expect(machine.handle(.woke, now: now) == [])
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        #expect(machine.handle(.nextDue(now.addingTimeInterval(5)), now: now) == [.startWaiter(.seconds(5)), .awaitStep])
    }

    @Test("outcomes of a failure: a permanent refusal, a retryable failure at the schedule's time (Retry-After honoured), past maxAge")
    func outcomes() {
        let machine = Self.machine()
        let fresh = Self.delivery(1, attempts: 0, createdAt: now)
        #expect(
            machine.decide(.permanent("400 Bad Request"), for: fresh, now: now, random: 0)
                == .deadLetter(error: "400 Bad Request", at: now, expired: false))
        // First failure: backoff 10 s, equal jitter: 5 s at random 0, 10 s at random 1.
        #expect(machine.decide(.retryable("503"), for: fresh, now: now, random: 0) == .retry(at: now.addingTimeInterval(5), error: "503"))
        #expect(
            machine.decide(.retryable("503"), for: fresh, now: now, random: 0.999_999)
                == .retry(at: now.addingTimeInterval(9.999_995), error: "503"))
        // Third failure: 40 s before jitter.
        let third = Self.delivery(1, attempts: 2, createdAt: now)
        #expect(machine.decide(.retryable("503"), for: third, now: now, random: 0) == .retry(at: now.addingTimeInterval(20), error: "503"))
        #expect(
            machine.decide(.retryable("429", after: .seconds(120)), for: fresh, now: now, random: 0)
                == .retry(at: now.addingTimeInterval(120), error: "429"))
        let old = Self.delivery(1, attempts: 7, createdAt: now.addingTimeInterval(-3600))
        #expect(machine.decide(.retryable("503"), for: old, now: now, random: 0) == .deadLetter(error: "503", at: now, expired: true))
        // A delivered event turns into the record action with that decision.
        var running = Self.machine()
        _ = running.handle(.turn(stopping: false), now: now)
        _ = running.handle(.claimed([fresh]), now: now)
        #expect(
            running.handle(.delivered(1, .failure(.retryable("503"))), now: now, random: 0) == [
                .record(fresh, .retry(at: now.addingTimeInterval(5), error: "503"), failures: 0, after: .zero)
            ])
        #expect(running.handle(.delivered(1, .success(took: .zero)), now: now) == [], "an outcome for a delivery not in flight is ignored")
    }

    @Test("a refused write is written again with growing backoff, nothing new is claimed meanwhile, and claiming resumes once it lands")
    func refusedWrites() {
        var machine = Self.machine(concurrency: 1)
        let a = Self.delivery(1)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([a]), now: now)
        let record = Machine.Record.deadLetter(error: "no", at: now, expired: false)
        #expect(machine.handle(.delivered(1, .failure(.permanent("no"))), now: now) == [.record(a, record, failures: 0, after: .zero)])
        #expect(machine.handle(.notRecorded(a, record, failures: 1), now: now) == [.record(a, record, failures: 1, after: .milliseconds(100))])
        #expect(!machine.handle(.turn(stopping: false), now: now).contains(.claim(limit: 8)), "no new delivery while an outcome cannot be written")
        #expect(machine.handle(.notRecorded(a, record, failures: 2), now: now) == [.record(a, record, failures: 2, after: .milliseconds(200))])
        #expect(machine.handle(.notRecorded(a, record, failures: 9), now: now) == [.record(a, record, failures: 9, after: .milliseconds(2_000))])
        #expect(machine.recording == [1], "still claimed while its outcome waits: never delivered twice")
        #expect(machine.handle(.recorded(1), now: now) == [.reportOutcomesWritable])
        #expect(machine.recording.isEmpty)
        #expect(machine.handle(.turn(stopping: false), now: now) == [.claim(limit: 8)])
    }

    @Test("reading the queue failing waits with growing backoff; a good read resets it; cancellation waits nothing")
    func readFailures() {
        var machine = Self.machine()
        _ = machine.handle(.turn(stopping: false), now: now)
        #expect(
            machine.handle(.storeFailed(cancelled: false), now: now) == [
                .reportReadFailure(failures: 1), .startWaiter(.milliseconds(200)), .awaitStep,
            ])
        _ = machine.handle(.woke, now: now)
        _ = machine.handle(.turn(stopping: false), now: now)
        #expect(
            machine.handle(.storeFailed(cancelled: false), now: now) == [
                .reportReadFailure(failures: 2), .startWaiter(.milliseconds(400)), .awaitStep,
            ])
        _ = machine.handle(.woke, now: now)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([]), now: now)
        _ = machine.handle(.nextDue(nil), now: now)
        _ = machine.handle(.woke, now: now)
        _ = machine.handle(.turn(stopping: false), now: now)
        #expect(machine.handle(.storeFailed(cancelled: false), now: now).first == .reportReadFailure(failures: 1), "a good read reset the count")
        _ = machine.handle(.woke, now: now)
        _ = machine.handle(.turn(stopping: false), now: now)
        #expect(machine.handle(.storeFailed(cancelled: true), now: now) == [.startWaiter(.zero), .awaitStep])
    }

    @Test("a stop starts nothing new, gives deliveries in flight the grace period once, and finishes when every outcome is written")
    func gracefulStop() {
        var machine = Self.machine(concurrency: 2)
        let (a, b) = (Self.delivery(1), Self.delivery(2))
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([a, b, Self.delivery(3)]), now: now)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.startGraceTimer(.seconds(5)), .awaitStep])
        #expect(machine.handle(.delivered(1, .success(took: .zero)), now: now).count == 1)
        #expect(
            machine.handle(.turn(stopping: false), now: now) == [.awaitStep],
            "a stop stays a stop; one grace timer; the buffered delivery does not start")
        #expect(machine.handle(.delivered(2, .success(took: .zero)), now: now) == [], "waits for the batch being written")
        #expect(machine.handle(.recordedSuccesses([1]), now: now) == [.recordSuccesses([Machine.Success(delivery: b, took: .zero)], failures: 0, after: .zero)])
        #expect(machine.handle(.turn(stopping: true), now: now) == [.awaitStep], "an outcome is still being written")
        _ = machine.handle(.recordedSuccesses([2]), now: now)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.finish])
    }

    @Test("at the end of the grace period everything is cancelled; abandoned tries and unwritten outcomes are given up")
    func graceOver() {
        var machine = Self.machine(concurrency: 3)
        let (a, b, c) = (Self.delivery(1), Self.delivery(2), Self.delivery(3))
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed([a, b, c]), now: now)
        _ = machine.handle(.delivered(3, .success(took: .zero)), now: now)
        _ = machine.handle(.turn(stopping: true), now: now)
        #expect(machine.handle(.graceOver, now: now) == [.reportAbandoned(count: 2), .cancelAll])
        #expect(machine.handle(.abandoned(1), now: now) == [])
        #expect(machine.handle(.abandoned(2), now: now) == [])
        #expect(
            machine.handle(.successesNotRecorded([Machine.Success(delivery: c, took: .zero)], failures: 1), now: now) == [], "not written again at a stop")
        #expect(machine.inFlight.isEmpty && machine.recording.isEmpty && machine.unrecorded.isEmpty)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.finish])
    }

    @Test("a stop with nothing in flight finishes at once")
    func idleStop() {
        var machine = Self.machine()
        #expect(machine.handle(.turn(stopping: true), now: now) == [.finish])
    }
}
