import Foundation
import Testing

@testable import BridgeCore

/// The sink worker writes successes in batches (issue 16): one at once, those that finish while
/// it is written together next, a refused batch again with backoff and nothing claimed meanwhile.
@Suite("sink worker: successes written in batches")
struct SuccessBatchTests {
    typealias Machine = SinkWorkerStateMachine
    let now = SinkWorkerStateMachineTests.now

    func delivery(_ id: Int64) -> Delivery { SinkWorkerStateMachineTests.delivery(id) }
    func success(_ id: Int64) -> Machine.Success { Machine.Success(delivery: delivery(id), took: .milliseconds(id)) }

    /// A machine with `count` deliveries (ids 1...count) in flight.
    func running(_ count: Int) -> Machine {
        var machine = SinkWorkerStateMachineTests.machine(concurrency: count, claimBatch: count)
        _ = machine.handle(.turn(stopping: false), now: now)
        _ = machine.handle(.claimed((1...Int64(count)).map(delivery)), now: now)
        return machine
    }

    @Test("the first success is written at once; those that finish meanwhile go together when it is durable")
    func accumulate() {
        var machine = running(4)
        #expect(machine.handle(.delivered(1, .success(took: .milliseconds(1))), now: now) == [.recordSuccesses([success(1)], failures: 0, after: .zero)])
        #expect(machine.handle(.delivered(2, .success(took: .milliseconds(2))), now: now) == [])
        #expect(machine.handle(.delivered(3, .success(took: .milliseconds(3))), now: now) == [])
        #expect(machine.recording == [1, 2, 3], "all still claimed until written")
        #expect(machine.pendingSuccesses == [success(2), success(3)])
        #expect(machine.handle(.recordedSuccesses([1]), now: now) == [.recordSuccesses([success(2), success(3)], failures: 0, after: .zero)])
        #expect(machine.recording == [2, 3])
        #expect(machine.handle(.recordedSuccesses([2, 3]), now: now) == [], "nothing waiting: no write")
        #expect(machine.recording.isEmpty)
        #expect(machine.handle(.delivered(4, .success(took: .milliseconds(4))), now: now) == [.recordSuccesses([success(4)], failures: 0, after: .zero)])
    }

    @Test("a retry is written at once and alone, beside a batch being written")
    func retriesAlone() {
        var machine = running(2)
        _ = machine.handle(.delivered(1, .success(took: .milliseconds(1))), now: now)
        let actions = machine.handle(.delivered(2, .failure(.retryable("503"))), now: now)
        #expect(actions.count == 1)
        guard case .record(let delivered, .retry(_, _), failures: 0, after: .zero) = actions.first else {
            Issue.record("expected a retry written alone: \(actions)")
            return
        }
        #expect(delivered.id == 2)
    }

    @Test("a refused batch is written again with backoff, with what finished meanwhile; nothing is claimed until it lands")
    func refused() {
        var machine = running(3)
        _ = machine.handle(.delivered(1, .success(took: .milliseconds(1))), now: now)
        _ = machine.handle(.delivered(2, .success(took: .milliseconds(2))), now: now)
        #expect(
            machine.handle(.successesNotRecorded([success(1)], failures: 1), now: now) == [
                .recordSuccesses([success(1), success(2)], failures: 1, after: .milliseconds(100))
            ])
        #expect(machine.unrecorded == [1])
        #expect(!machine.handle(.turn(stopping: false), now: now).contains(.claim(limit: 3)), "no claim while outcomes cannot be written")
        #expect(machine.handle(.delivered(3, .success(took: .milliseconds(3))), now: now) == [], "waits for the batch being written again")
        #expect(
            machine.handle(.successesNotRecorded([success(1), success(2)], failures: 2), now: now) == [
                .recordSuccesses([success(1), success(2), success(3)], failures: 2, after: .milliseconds(200))
            ])
        #expect(machine.handle(.recordedSuccesses([1, 2, 3]), now: now) == [.reportOutcomesWritable])
        #expect(machine.recording.isEmpty && machine.unrecorded.isEmpty)
        #expect(machine.handle(.turn(stopping: false), now: now) == [.claim(limit: 3)])
    }

    @Test("at a stop a refused batch is given up (at-least-once); successes that finished meanwhile are still tried, then it finishes")
    func stopGivesUp() {
        var machine = running(2)
        _ = machine.handle(.delivered(1, .success(took: .milliseconds(1))), now: now)
        _ = machine.handle(.turn(stopping: true), now: now)
        _ = machine.handle(.delivered(2, .success(took: .milliseconds(2))), now: now)
        #expect(machine.handle(.successesNotRecorded([success(1)], failures: 1), now: now) == [.recordSuccesses([success(2)], failures: 0, after: .zero)])
        #expect(machine.recording == [2])
        #expect(machine.handle(.turn(stopping: true), now: now) == [.awaitStep])
        #expect(machine.handle(.successesNotRecorded([success(2)], failures: 1), now: now) == [])
        #expect(machine.recording.isEmpty && machine.unrecorded.isEmpty)
        #expect(machine.handle(.turn(stopping: true), now: now) == [.finish])
    }
}
