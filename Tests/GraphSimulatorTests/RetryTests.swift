import CurlKit
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TestSupport
import Testing

@testable import GraphSimulator

/// Graph's retries (graph-protocol 3.2): a notification the endpoint does not take (refused
/// connection, timeout, non-2xx) is retried with backoff for up to 4 hours, and the simulator says so
/// in its log at the levels `graph-bridge simulator` shows by default.
@Suite("notification retries")
struct RetryTests {
    @Test("the default schedule is exponential backoff that ends 4 hours after the first attempt")
    func graphSchedule() {
        let schedule = GraphSimulator.graphRetrySchedule
        #expect(GraphSimulator.Configuration().retrySchedule == schedule)
        #expect(schedule.first == .seconds(60))
        for (wait, next) in zip(schedule, schedule.dropFirst().dropLast()) {
            #expect(next == wait * 2, "doubling until the last wait")
        }
        #expect(schedule.reduce(Duration.zero, +) == .seconds(4 * 3600), "the last retry 4 h after the first attempt")
        #expect(schedule.last! <= schedule[schedule.count - 2] * 2)
    }

    @Test("log durations read like an operator writes them")
    func durations() {
        #expect(RetryText.describe(.milliseconds(250)) == "250ms")
        #expect(RetryText.describe(.seconds(5)) == "5s")
        #expect(RetryText.describe(.milliseconds(1500)) == "1.5s")
        #expect(RetryText.describe(.seconds(60)) == "1m")
        #expect(RetryText.describe(.seconds(113 * 60)) == "1h 53m")
        #expect(RetryText.describe(.seconds(3601)) == "1h 1s")
    }

    @Test("a notification sent while the subscriber is down is retried and delivered once it is back on the same port; each try is logged")
    func subscriberDownThenBack() async throws {
        let lines = EventLog<LoggedLine>()
        var configuration = Harness.configuration()
        configuration.retrySchedule = Array(repeating: .milliseconds(100), count: 300)
        let simulator = try GraphSimulator(configuration: configuration, logger: Harness.collectingLogger(lines, level: .notice))
        let simulatorGroup = ServiceGroup(configuration: .init(services: [.init(service: simulator)], logger: Harness.logger))
        let client = CurlClient()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await simulatorGroup.run() }
            defer { tasks.cancelAll() }
            _ = try await simulator.waitUntilReady()

            // The subscriber, in a group of its own so it can stop and come back.
            let first = Subscriber()
            let firstGroup = ServiceGroup(configuration: .init(services: [.init(service: first.makeApplication())], logger: Harness.logger))
            let firstRun = Task { try await firstGroup.run() }
            let port = try await first.port.value()
            let live = Live(simulator: simulator, subscriber: first, subscriberURL: "http://127.0.0.1:\(port)", client: client)
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created"))

            // Stopped: once its group has returned, nothing listens on the port.
            await firstGroup.triggerGracefulShutdown()
            try await firstRun.value

            let change = try simulator.createMessage(MessageContent(subject: "sent while the bridge restarts"), in: "alice@contoso.com")
            #expect(change.notifiedSubscriptionIDs == [id])
            let failed = try await simulator.waitForDeliveries { $0.contains { $0.kind == .changeNotification } }
            let firstAttempt = try #require(failed.first { $0.kind == .changeNotification })
            #expect(firstAttempt.attempt == 1 && firstAttempt.status == nil && !firstAttempt.isFinal)
            #expect(firstAttempt.error?.contains("couldNotConnect") == true, "\(firstAttempt.error ?? "")")
            let warning = try await lines.first { $0.message == "notification not delivered; will retry" }
            #expect(warning.level == .warning)
            #expect(warning.metadata["bridge.attempt"] == "1")
            #expect(warning.metadata["bridge.url"] == "http://127.0.0.1:\(port)/notify")
            #expect(warning.metadata["bridge.retry_in"] == "100ms")
            #expect(warning.metadata["bridge.retries_left"] == "300")
            #expect(warning.metadata["bridge.subscriptions"] == id)
            #expect(warning.metadata["bridge.outcome"]?.isEmpty == false)

            // Back on the same port: the next retry gets through.
            let second = Subscriber()
            let secondGroup = ServiceGroup(
                configuration: .init(services: [.init(service: second.makeApplication(port: port))], logger: Harness.logger))
            tasks.addTask { try await secondGroup.run() }
            #expect(try await second.port.value() == port)
            let delivered = try await second.notifications.first { _ in true }
            let item = try #require(delivered.items.first)
            #expect(item["subscriptionId"]?.stringValue == id)
            #expect(item["resourceData"]?["id"]?.stringValue == change.message.id)
            let notice = try await lines.first { $0.message == "notification delivered on a retry" }
            #expect(notice.level == .notice)
            let attempts = simulator.deliveries.filter { $0.kind == .changeNotification }
            #expect(attempts.last?.succeeded == true && attempts.last?.isFinal == true)
            #expect(attempts.dropLast().allSatisfy { $0.status == nil && !$0.isFinal }, "every earlier try failed to connect")
            #expect(notice.metadata["bridge.attempt"] == "\(attempts.count)")
            #expect(attempts.count >= 2)
            let warnings = lines.items.filter { $0.message == "notification not delivered; will retry" }
            #expect(warnings.count == attempts.count - 1, "one warning per failed try")

            await secondGroup.triggerGracefulShutdown()
            await simulatorGroup.triggerGracefulShutdown()
            await client.shutdown()
        }
    }

    @Test("a non-2xx answer is retried; after the last retry the notification is dropped and that is logged as an error")
    func exhausted() async throws {
        let lines = EventLog<LoggedLine>()
        let simulator = try GraphSimulator(configuration: Harness.configuration(), logger: Harness.collectingLogger(lines, level: .notice))
        let subscriber = Subscriber()
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: simulator), .init(service: subscriber.makeApplication())], logger: Harness.logger))
        let client = CurlClient()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            _ = try await simulator.waitUntilReady()
            let live = Live(
                simulator: simulator, subscriber: subscriber, subscriberURL: "http://127.0.0.1:\(try await subscriber.port.value())", client: client)
            let token = try await live.appToken()
            _ = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created"))
            subscriber.queueStatuses([503, 500, 400], for: "/notify")
            try simulator.createMessage(MessageContent(subject: "never taken"), in: "alice@contoso.com")
            let dropped = try await lines.first { $0.message == "notification dropped after the last retry" }
            #expect(dropped.level == .error)
            #expect(dropped.metadata["bridge.attempt"] == "3")
            #expect(dropped.metadata["bridge.outcome"] == "HTTP 400")
            let warnings = lines.items.filter { $0.message == "notification not delivered; will retry" }
            #expect(warnings.map { $0.metadata["bridge.outcome"] } == ["HTTP 503", "HTTP 500"])
            #expect(warnings.map { $0.metadata["bridge.retries_left"] } == ["2", "1"])
            let attempts = simulator.deliveries.filter { $0.kind == .changeNotification }
            #expect(attempts.map(\.status) == [503, 500, 400])
            #expect(attempts.map(\.isFinal) == [false, false, true])
            await group.triggerGracefulShutdown()
            await client.shutdown()
        }
    }
}
