import Dispatch
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import BridgeServer

@Suite("LoopHop")
struct LoopHopTests {
    @Test("pieces handed over while the loop is busy join one execute, and run on the loop in the order given")
    func coalesces() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hop = LoopHop.Registry().hop(for: loop)
        let busy = DispatchSemaphore(value: 0)
        loop.execute { busy.wait() }
        let ran = Mutex<[Int]>([])
        let done = OneShot<Void>()
        for piece in 0..<100 {
            hop {
                precondition(loop.inEventLoop)
                let count = ran.withLock { ran in
                    ran.append(piece)
                    return ran.count
                }
                if count == 100 { done.set(()) }
            }
        }
        busy.signal()
        await done.value()
        #expect(ran.withLock { $0 } == Array(0..<100))
        #expect(hop.executeCount == 1)
        // Once it has run, the next piece schedules a new one.
        let again = OneShot<Void>()
        hop { again.set(()) }
        await again.value()
        #expect(hop.executeCount == 2)
        try await group.shutdownGracefully()
    }

    @Test("the registry gives one hop per loop")
    func onePerLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let registry = LoopHop.Registry()
        let (a, b) = (group.next(), group.next())
        #expect(registry.hop(for: a) === registry.hop(for: a))
        #expect(registry.hop(for: a) !== registry.hop(for: b))
        try await group.shutdownGracefully()
    }
}
