import NIOCore
import Synchronization

/// Work handed to one event loop from other threads, coalesced: the first piece schedules one
/// `execute`, and pieces that arrive before it runs join it. The group committer's thread
/// completes a whole transaction's requests one after another, so a commit costs each event loop
/// one wake-up and one task, whatever the number of requests it answers.
final class LoopHop: Sendable {
    let loop: any EventLoop
    private let queued = Mutex<(work: [@Sendable () -> Void], scheduled: Bool)>(([], false))
    private let executes = Atomic<Int>(0)

    /// How many `execute`s it has scheduled (tests).
    var executeCount: Int { executes.load(ordering: .relaxed) }

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func callAsFunction(_ work: @escaping @Sendable () -> Void) {
        let schedule = queued.withLock { queued -> Bool in
            queued.work.append(work)
            defer { queued.scheduled = true }
            return !queued.scheduled
        }
        if schedule {
            executes.add(1, ordering: .relaxed)
            loop.execute { self.run() }
        }
    }

    private func run() {
        let work = queued.withLock { queued -> [@Sendable () -> Void] in
            queued.scheduled = false
            var taken: [@Sendable () -> Void] = []
            swap(&taken, &queued.work)
            return taken
        }
        for piece in work { piece() }
    }

    /// One per event loop, made on first use.
    final class Registry: Sendable {
        private let hops = Mutex<[ObjectIdentifier: LoopHop]>([:])

        init() {}

        func hop(for loop: any EventLoop) -> LoopHop {
            hops.withLock { hops in
                if let hop = hops[ObjectIdentifier(loop)] { return hop }
                let hop = LoopHop(loop: loop)
                hops[ObjectIdentifier(loop)] = hop
                return hop
            }
        }
    }
}
