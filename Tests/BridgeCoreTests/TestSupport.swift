import BridgeConfig
import BridgeCore
import BridgeStore
import Foundation
import Logging
import Synchronization

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
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    let state = Mutex(State())

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
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.delivered.append(event.id)
            let count = state.delivered.count
            let ready = state.waiters.filter { $0.count <= count }.map(\.continuation)
            state.waiters.removeAll { $0.count <= count }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    var delivered: [String] { state.withLock { $0.delivered } }
    var attemptCount: Int { state.withLock { $0.attempts.count } }
    func attempts(for event: String) -> [Int] { state.withLock { $0.attempts.filter { $0.event == event }.map(\.number) } }

    /// Returns once `count` deliveries succeeded.
    func waitForDeliveries(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.delivered.count >= count { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }
}

