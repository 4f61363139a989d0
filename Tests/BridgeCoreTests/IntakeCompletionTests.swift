import BridgeCore
import BridgeStore
import Foundation
import Synchronization
import Testing
import TestSupport

/// ``NotificationIntake/receive(body:endpoint:now:completion:)``, the form the public listener's
/// event loops call: the same answers as the awaited form, and with SQLite no task in between.
@Suite("Notification intake, completion form")
struct IntakeCompletionTests {
    typealias Fixture = IntakeTests.Fixture

    /// The answer, and whether the completion ran inside a task.
    static func receive(_ intake: NotificationIntake, _ body: [UInt8], endpoint: NotificationIntake.Endpoint = .notifications) async -> (
        NotificationIntake.Outcome, inTask: Bool
    ) {
        await withCheckedContinuation { continuation in
            intake.receive(body: body, endpoint: endpoint) { outcome in
                continuation.resume(returning: (outcome, withUnsafeCurrentTask { $0 != nil }))
            }
        }
    }

    @Test("with SQLite the write goes straight to the writer: the 202 comes from its thread, not from a task, after the event is on disk")
    func straightToTheWriter() async throws {
        let fixture = try Fixture()
        let (outcome, inTask) = await Self.receive(fixture.intake, IntakeTests.body([IntakeTests.item(), IntakeTests.item(etag: "W/\"2\"")]))
        #expect(outcome.status == 202)
        #expect(outcome.accepted == 2)
        #expect(!inTask, "the completion ran in a task: the journal write went through the cooperative pool")
        #expect(try await fixture.store.eventCount() == 2)
        // The same item again is a duplicate, answered 202 as before.
        let (again, _) = await Self.receive(fixture.intake, IntakeTests.body([IntakeTests.item()]))
        #expect(again.status == 202 && again.duplicates == 1 && again.accepted == 0)
    }

    @Test("what needs no journal is answered before receive returns; bad input gets the awaited form's answers")
    func answeredAtOnce() async throws {
        let fixture = try Fixture()
        let answers = Mutex<[Int]>([])
        for body in [Array("{not json".utf8), IntakeTests.body([IntakeTests.item(clientState: "forged")]), IntakeTests.body([])] {
            fixture.intake.receive(body: body, endpoint: .notifications) { outcome in answers.withLock { $0.append(outcome.status) } }
        }
        #expect(answers.withLock { $0 } == [400, 202, 202])
        #expect(try await fixture.store.eventCount() == 0)
    }

    @Test("a failing journal answers 503; a store with a journal deadline still has it (in a task)")
    func failuresAndDeadlines() async throws {
        let failing = try Fixture(store: FailingStore())
        let (failed, _) = await Self.receive(failing.intake, IntakeTests.body([IntakeTests.item()]))
        #expect(failed.status == 503 && failed.accepted == 0)
        #expect(failing.intake.lastJournalFailure != nil)

        let clock = ManualTestClock(start: Date())
        let hanging = try Fixture(store: FailingStore(hangs: true), journalDeadline: .seconds(5), clock: clock)
        let answer = Task { await Self.receive(hanging.intake, IntakeTests.body([IntakeTests.item()])) }
        await clock.sleepers(1, until: .seconds(5))
        clock.advance(by: .seconds(5))
        let (outcome, inTask) = await answer.value
        #expect(outcome.status == 503)
        #expect(inTask)
        #expect(hanging.intake.lastJournalFailure?.contains("did not take the write") == true)
    }

    @Test("lifecycle events: the observer is told before the answer")
    func lifecycleObserverFirst() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let observer = Observer()
        let intake = NotificationIntake(
            directory: SubscriptionDirectory([
                SubscriptionEntry(name: "audit-feed", id: IntakeTests.subscriptionID, resource: "users/alice/messages", clientState: "secretClientValue")
            ]),
            store: store, doorbell: Doorbell(), lifecycleObserver: observer, logger: quietLogger)
        let item = #"{"subscriptionId":"\#(IntakeTests.subscriptionID)","clientState":"secretClientValue","lifecycleEvent":"reauthorizationRequired"}"#
        let seen = Mutex<[String]?>(nil)
        let done = OneShot<NotificationIntake.Outcome>()
        intake.receive(body: IntakeTests.body([item]), endpoint: .lifecycle) { outcome in
            seen.withLock { $0 = observer.events }
            done.set(outcome)
        }
        let outcome = await done.value()
        #expect(outcome.accepted == 1)
        #expect(seen.withLock { $0 } == ["reauthorizationRequired"])
    }

    @Test("an unknown subscription: the directory is refreshed once (in a task) and the item then accepted")
    func refreshForUnknown() async throws {
        let fixture = try Fixture()
        let late = SubscriptionEntry(name: "late", id: "11111111-2222-3333-4444-555555555555", resource: nil, clientState: "lateState")
        let refresher = Refresher(directory: SubscriptionDirectory(), entry: late)
        let intake = NotificationIntake(
            directory: refresher.directory, store: fixture.store, doorbell: Doorbell(), directoryRefresher: refresher, logger: quietLogger)
        let (outcome, _) = await Self.receive(intake, IntakeTests.body([IntakeTests.item(id: late.id, clientState: "lateState")]))
        #expect(outcome.accepted == 1)
        #expect(refresher.refreshes.withLock { $0 } == 1)
    }

    @Test("an unknown subscription the refresh does not find either: one refresh, then the item is dropped, in both forms")
    func refreshFindsNothing() async throws {
        let fixture = try Fixture()
        let late = SubscriptionEntry(name: "late", id: "11111111-2222-3333-4444-555555555555", resource: nil, clientState: "lateState")
        let refresher = Refresher(directory: SubscriptionDirectory(), entry: late, adds: false)
        let intake = NotificationIntake(
            directory: refresher.directory, store: fixture.store, doorbell: Doorbell(), directoryRefresher: refresher, logger: quietLogger)
        let body = IntakeTests.body([IntakeTests.item(id: late.id, clientState: "lateState")])
        let (outcome, _) = await Self.receive(intake, body)
        #expect(outcome.accepted == 0)
        #expect(outcome.unknownSubscription == 1)
        let awaited = await intake.receive(body: body, endpoint: .notifications)
        #expect(awaited.accepted == 0)
        #expect(awaited.unknownSubscription == 1)
        #expect(refresher.refreshes.withLock { $0 } == 2, "one refresh per request, never a second one after it")
    }

    final class Observer: LifecycleObserver {
        private let seen = Mutex<[String]>([])
        var events: [String] { seen.withLock { $0 } }
        func lifecycleEventsJournaled(_ events: [BridgeEvent]) async {
            seen.withLock { $0 += events.compactMap(\.lifecycleEvent) }
        }
    }

    /// Adds its entry to the directory when asked (another replica created the subscription).
    final class Refresher: DirectoryRefresher {
        let directory: SubscriptionDirectory
        let entry: SubscriptionEntry
        /// Whether a refresh finds the entry (false: the subscription is unknown everywhere).
        let adds: Bool
        let refreshes = Mutex(0)
        init(directory: SubscriptionDirectory, entry: SubscriptionEntry, adds: Bool = true) {
            self.directory = directory
            self.entry = entry
            self.adds = adds
        }
        func refreshDirectory() async {
            refreshes.withLock { $0 += 1 }
            if adds { directory.upsert(entry) }
        }
    }
}
