import BridgeCore
import BridgeGraph
import CurlKit
import Foundation
import GraphClient
import GraphSimulator
import TestSupport
import Testing

/// `fetch:`'s waits between reads of one item, on a clock the test moves: the reads are real
/// (the simulator on loopback answers them, faults included); only the waiting is the test's.
@Suite("enrichment retries on an injected clock", .timeLimit(.minutes(2)))
struct EnricherClockTests {
    static let inbox = GraphEnricher.Target(resource: "users/alice@contoso.com/mailFolders('Inbox')/messages", select: ["subject"])

    static func pending(_ message: SimulatedMessage) -> PendingEvent {
        PendingEvent(
            sequence: 1,
            event: BridgeEvent(
                id: "e", receivedAt: Date(), subscription: SubscriptionReference(name: "inbox", id: "s", resource: nil),
                changeType: "created", resource: "Users/\(SimulatedUser.alice.id)/Messages/\(message.id)"),
            attachment: nil)
    }

    /// The statuses the simulator answered to reads of `message`, in order.
    static func reads(of message: SimulatedMessage, at simulator: GraphSimulator) -> [Int] {
        simulator.requests.filter { $0.path.contains(message.id) }.map(\.status)
    }

    @Test("a 429 with Retry-After: 30 is read again at 30 s on the enricher's clock, not at 29.999 s")
    func retryAfter() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let clock = ManualTestClock(start: Date())
            let enricher = GraphEnricher(graph: graphClient(for: simulator, http: http), targets: ["inbox": Self.inbox], logger: quiet, clock: clock)
            let message = try simulator.createMessage(MessageContent(subject: "throttled"), in: "alice@contoso.com").message
            simulator.injectFault(.tooManyRequests(retryAfter: 30), on: .getMessage)

            let enriched = Task { await enricher.enrich(Self.pending(message)) }
            try #require(await clock.sleeper { _ in true }.offset == .seconds(30))
            #expect(Self.reads(of: message, at: simulator) == [429])
            clock.advance(by: .milliseconds(29_999))
            #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(30)], "still waiting at 29.999 s")
            #expect(Self.reads(of: message, at: simulator) == [429])
            clock.advance(by: .milliseconds(1))
            #expect(await enriched.value?.data?["subject"]?.stringValue == "throttled")
            #expect(Self.reads(of: message, at: simulator) == [429, 200])
            await http.shutdown()
        }
    }

    @Test("503s without Retry-After are read again after 1 s, 2 s and 4 s; after `attempts` reads the event routes without data")
    func backoffThenGiveUp() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let clock = ManualTestClock(start: Date())
            let enricher = GraphEnricher(
                graph: graphClient(for: simulator, http: http), targets: ["inbox": Self.inbox], logger: quiet, attempts: 4, clock: clock)
            let message = try simulator.createMessage(MessageContent(subject: "unavailable"), in: "alice@contoso.com").message
            simulator.injectFault(.serviceUnavailable(retryAfter: nil), on: .getMessage, count: 10)

            let enriched = Task { await enricher.enrich(Self.pending(message)) }
            // Reads at 0, 1, 3 and 7 s on the clock.
            for (wait, until, readsBefore) in [(1, 1, 1), (2, 3, 2), (4, 7, 3)] as [(Int64, Int64, Int)] {
                try #require(await clock.sleeper { _ in true }.offset == .seconds(until))
                #expect(Self.reads(of: message, at: simulator).count == readsBefore)
                clock.advance(by: .seconds(wait) - .milliseconds(1))
                #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(until)], "not read again 1 ms early")
                #expect(Self.reads(of: message, at: simulator).count == readsBefore)
                clock.advance(by: .milliseconds(1))
            }
            let event = await enriched.value
            #expect(event != nil && event?.data == nil, "routed without data")
            #expect(Self.reads(of: message, at: simulator) == [503, 503, 503, 503])
            #expect(clock.now.offset == .seconds(7))
            #expect(clock.pendingDeadlines.isEmpty, "no wait after the last attempt")
            await http.shutdown()
        }
    }

    @Test("stopping the bridge (cancelling the enrichment) ends a Retry-After wait at once, without reading again")
    func cancelledWait() async throws {
        try await withSimulator { simulator in
            let http = CurlClient()
            let clock = ManualTestClock(start: Date())
            let enricher = GraphEnricher(graph: graphClient(for: simulator, http: http), targets: ["inbox": Self.inbox], logger: quiet, clock: clock)
            let message = try simulator.createMessage(MessageContent(subject: "stopping"), in: "alice@contoso.com").message
            simulator.injectFault(.tooManyRequests(retryAfter: 3600), on: .getMessage)

            let enriched = Task { await enricher.enrich(Self.pending(message)) }
            try #require(await clock.sleeper { _ in true }.offset == .seconds(3600))
            enriched.cancel()
            let event = await enriched.value
            #expect(event?.data == nil)
            #expect(clock.pendingDeadlines.isEmpty)
            #expect(clock.now.offset == .zero, "the clock never moved")
            #expect(Self.reads(of: message, at: simulator) == [429])
            await http.shutdown()
        }
    }
}
