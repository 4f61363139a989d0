import Testing
import TestSupport

/// The shared "wait until N happened" primitive: woken by adds, bounded, cancellable.
@Suite("Tally")
struct TallyTests {
    @Test("a waiter wakes when the count reaches its number, not before; one already reached returns at once")
    func wakesAtItsNumber() async {
        let tally = Tally()
        let waiter = Task { await tally.wait(for: 3) }
        tally.add()
        tally.add()
        #expect(tally.count == 2)
        tally.add()
        #expect(await waiter.value)
        #expect(await tally.wait(for: 1, timeout: .zero))
    }

    @Test("a wait whose number is never reached returns false at its timeout instead of hanging")
    func timesOut() async {
        let tally = Tally()
        tally.add()
        #expect(await tally.wait(for: 2, timeout: .milliseconds(50)) == false)
        // The given-up waiter is gone: later adds wake only the waiters there are.
        tally.add()
        #expect(await tally.wait(for: 2, timeout: .zero))
    }

    @Test("a cancelled waiter returns false at once")
    func cancelled() async {
        let tally = Tally()
        let waiter = Task { await tally.wait(for: 1, timeout: .seconds(3600)) }
        waiter.cancel()
        #expect(await waiter.value == false)
    }
}
