import BridgeConfig
import BridgeCore
import BridgeStore
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

let quietLogger: Logger = {
    var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

func makeEvent(id: String = EventID.make(), subscription: String = "inbox", changeType: String? = "created", lifecycleEvent: String? = nil, resource: String = "Users/1/Messages/1", at date: Date = Date()) -> BridgeEvent {
    BridgeEvent(
        id: id,
        receivedAt: date,
        subscription: SubscriptionReference(name: subscription, id: "sub-\(subscription)", resource: nil),
        changeType: lifecycleEvent == nil ? changeType : nil,
        lifecycleEvent: lifecycleEvent,
        resource: lifecycleEvent == nil ? resource : nil
    )
}

/// What a test sink does with one delivery.
enum Behaviour: Sendable {
    case succeed
    case fail(SinkError)
    case hang
}

/// A sink plugin for engine tests: records every delivery and behaves as the test scripts it.
/// Its `Configuration` decodes keys so config tests can check a plugin's own keys too.
struct RecordingSink: Sink {
    static let typeName = "recording"
    static let defaultConcurrency = 2

    struct Configuration: Decodable, Sendable {
        var label: String?
    }

    let recorder: Recorder

    init(name: String, configuration: Configuration, context: SinkContext) throws {
        recorder = Recorder()
    }

    init(recorder: Recorder) { self.recorder = recorder }

    func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        let behaviour = recorder.record(event, attempt: attempt)
        switch behaviour {
        case .succeed: recorder.succeeded(event)
        case .fail(let error): throw error
        case .hang: try await Task.sleep(for: .seconds(3600))
        }
    }
}

final class Recorder: Sendable {
    struct State {
        var attempts: [(event: String, number: Int)] = []
        var delivered: [String] = []
        var script: @Sendable (BridgeEvent, DeliveryAttempt) -> Behaviour = { _, _ in .succeed }
    }

    let state = Mutex(State())
    private let deliveries = Tally()

    init(script: @escaping @Sendable (BridgeEvent, DeliveryAttempt) -> Behaviour = { _, _ in .succeed }) {
        state.withLock { $0.script = script }
    }

    func setScript(_ script: @escaping @Sendable (BridgeEvent, DeliveryAttempt) -> Behaviour) {
        state.withLock { $0.script = script }
    }

    func record(_ event: BridgeEvent, attempt: DeliveryAttempt) -> Behaviour {
        state.withLock { state in
            state.attempts.append((event.id, attempt.number))
            return state.script(event, attempt)
        }
    }

    func succeeded(_ event: BridgeEvent) {
        state.withLock { $0.delivered.append(event.id) }
        deliveries.add()
    }

    var delivered: [String] { state.withLock { $0.delivered } }
    var attemptCount: Int { state.withLock { $0.attempts.count } }
    func attempts(for event: String) -> [Int] { state.withLock { $0.attempts.filter { $0.event == event }.map(\.number) } }

    /// Returns once `count` deliveries succeeded; records an issue and returns after 30 s if
    /// they did not (the test's expectations then say which are missing).
    func waitForDeliveries(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async {
        if await !deliveries.wait(for: count) {
            Issue.record("only \(deliveries.count) of \(count) deliveries within 30 s", sourceLocation: sourceLocation)
        }
    }
}

