import Foundation
import GraphClient
import Synchronization

@testable import BridgeGraph

/// Microsoft Graph's subscription API in memory, behaving as graph-protocol.md sections 1 and 4
/// say, for testing the ``SubscriptionManager``'s decisions without a simulator process or a
/// listener: fresh ids, expiry within the resource's maximum (400 beyond it or in the past), 409
/// for a repeated resource and changeType, 404 for an unknown, expired or deleted subscription,
/// `encryptionCertificate` PATCHes only on rich subscriptions. Errors on cue (``fail(_:with:times:)``),
/// calls that wait until released (``hold(_:)``), and every call recorded and awaitable.
final class InMemoryGraph: SubscriptionGraph {
    enum Operation: String, Sendable {
        case create, get, list, renew, updateCertificate, reauthorize, delete, delta
    }

    /// One call as the manager made it, and Graph's answer.
    struct Call: Sendable {
        /// Its place among all calls, from 0.
        var index = 0
        var operation: Operation
        /// The subscription id the call named (or created); nil for list and delta.
        var id: String?
        /// HTTP status Graph answered (0 while held, for a call that was cancelled).
        var status: Int
        var request: SubscriptionRequest?
        var certificateID: String?
    }

    /// A subscription as Graph keeps it.
    struct Stored: Sendable {
        var subscription: GraphSubscription
        var expiration: Date
        var encryptionCertificate: String?
        var reauthorizations = 0
    }

    private struct State {
        var subscriptions: [String: Stored] = [:]
        var order: [String] = []
        var calls: [Call] = []
        var faults: [Operation: [GraphError]] = [:]
        /// Held operations, each for one resource (nil: every call of that operation).
        var held: [(operation: Operation, resource: String?)] = []
        var holdWaiters: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var callWaiters: [(id: Int, predicate: @Sendable (Call) -> Bool, continuation: CheckedContinuation<Call, any Error>)] = []
        var nextWaiter = 0
        var deltaPages: [String: String] = [:]
    }

    private let state = Mutex(State())
    /// Caps every lifetime below Graph's maximum (a test that wants renewals soon).
    let maxLifetime: TimeInterval?
    /// Graph's idea of now: expiry is checked against it (a test clock moves it).
    let now: @Sendable () -> Date

    init(maxLifetime: Duration? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
        self.maxLifetime = maxLifetime.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
    }

    // MARK: What tests see and arrange

    /// The subscriptions Graph has now (unexpired), in creation order.
    var subscriptions: [Stored] {
        state.withLock { state in
            state.order.compactMap { state.subscriptions[$0] }.filter { $0.expiration > self.now() }
        }
    }

    /// Every call so far, in order.
    var calls: [Call] { state.withLock { $0.calls } }

    func calls(_ operation: Operation) -> [Call] { calls.filter { $0.operation == operation } }

    /// The next `times` calls of `operation` fail with `error` (before Graph changes anything).
    func fail(_ operation: Operation, with error: GraphError, times: Int = 1) {
        state.withLock { $0.faults[operation, default: []] += Array(repeating: error, count: times) }
    }

    /// Calls of `operation` (only those for `resource`, when given) wait until ``release(_:)``;
    /// they are recorded when they finish.
    func hold(_ operation: Operation, resource: String? = nil) { state.withLock { $0.held.append((operation, resource)) } }

    func release(_ operation: Operation) {
        let waiters = state.withLock { state in
            state.held.removeAll { $0.operation == operation }
            defer { state.holdWaiters = [] }
            return state.holdWaiters
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    /// Forgets a subscription, as Graph does when it removes one (its next GET or PATCH is a 404).
    func forget(id: String) {
        _ = state.withLock { $0.subscriptions.removeValue(forKey: id) }
    }

    /// Puts a subscription there as if made by another run or another app.
    @discardableResult
    func add(_ request: SubscriptionRequest) -> String {
        let id = UUID().uuidString.lowercased()
        state.withLock { state in
            state.subscriptions[id] = Self.stored(id: id, request)
            state.order.append(id)
        }
        return id
    }

    /// What ``deltaPage(_:)`` answers for `link`: a JSON body.
    func setDeltaPage(_ link: String, body: String) { state.withLock { $0.deltaPages[link] = body } }

    /// The first call (already made or still to come) that matches `predicate`.
    func waitForCall(timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (Call) -> Bool) async throws -> Call {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withThrowingTaskGroup(of: Call.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let found: Call? = self.state.withLock { state in
                        if let call = state.calls.first(where: predicate) { return call }
                        state.callWaiters.append((id, predicate, continuation))
                        return nil
                    }
                    if let found { continuation.resume(returning: found) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                struct TimedOut: Error, CustomStringConvertible {
                    var calls: [Call]
                    var description: String { "no such Graph call within the time; calls: \(calls.map { "\($0.operation) \($0.status)" })" }
                }
                let waiter = self.state.withLock { state -> CheckedContinuation<Call, any Error>? in
                    guard let index = state.callWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.callWaiters.remove(at: index).continuation
                }
                waiter?.resume(throwing: TimedOut(calls: self.calls))
                throw TimedOut(calls: self.calls)
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }

    /// Waits for the `count`th call matching `predicate`.
    func waitForCalls(_ count: Int, timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (Call) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while calls.filter(predicate).count < count {
            let next = calls.count
            // (Predicates run under the lock: they must not read `calls`.)
            _ = try await waitForCall(timeout: deadline - ContinuousClock.now) { call in call.index >= next && predicate(call) }
        }
    }

    // MARK: SubscriptionGraph

    func createSubscription(_ request: SubscriptionRequest) async throws -> GraphSubscription {
        try await call(.create, id: nil, request: request) { state in
            if let problem = self.expirationProblem(request.expiration, resource: request.resource, rich: request.includeResourceData) {
                throw problem
            }
            if request.includeResourceData, request.encryptionCertificate?.isEmpty ?? true || request.encryptionCertificateID?.isEmpty ?? true {
                throw Self.error(400, .badRequest, "InvalidRequest", "A valid encryptionCertificate is required when includeResourceData is true.")
            }
            let now = self.now()
            if let existing = state.order.compactMap({ state.subscriptions[$0] }).first(where: {
                $0.expiration > now && $0.subscription.resource.lowercased() == request.resource.lowercased()
                    && $0.subscription.changeType == request.changeTypes.joined(separator: ",")
            }) {
                throw Self.error(
                    409, .conflict, "Conflict", "Subscription Id \(existing.subscription.id) already exists for the requested combination")
            }
            let id = UUID().uuidString.lowercased()
            state.subscriptions[id] = Self.stored(id: id, request)
            state.order.append(id)
            return (id, state.subscriptions[id]!.subscription)
        }
    }

    func subscription(id: String) async throws -> GraphSubscription {
        try await call(.get, id: id) { state in (id, try self.existing(id, in: &state).subscription) }
    }

    func listSubscriptions() async throws -> [GraphSubscription] {
        try await call(.list, id: nil) { state in
            let now = self.now()
            // A list never returns clientState.
            return (
                nil,
                state.order.compactMap { state.subscriptions[$0] }.filter { $0.expiration > now }.map {
                    var subscription = $0.subscription
                    subscription.clientState = nil
                    return subscription
                }
            )
        }
    }

    func renewSubscription(id: String, until expiration: Date) async throws -> GraphSubscription {
        try await call(.renew, id: id) { state in
            var stored = try self.existing(id, in: &state)
            if let problem = self.expirationProblem(
                expiration, resource: stored.subscription.resource, rich: stored.subscription.includeResourceData ?? false)
            {
                throw problem
            }
            stored.expiration = expiration
            stored.subscription.expirationDateTime = GraphDate.format(expiration)
            state.subscriptions[id] = stored
            return (id, stored.subscription)
        }
    }

    func updateEncryptionCertificate(id: String, certificate: String, certificateID: String, until expiration: Date) async throws
        -> GraphSubscription
    {
        try await call(.updateCertificate, id: id, certificateID: certificateID) { state in
            var stored = try self.existing(id, in: &state)
            guard stored.subscription.includeResourceData == true else {
                throw Self.error(
                    400, .badRequest, "InvalidRequest", "encryptionCertificate applies only to a subscription with includeResourceData set to true.")
            }
            guard !certificate.isEmpty, !certificateID.isEmpty, certificateID.count <= 128 else {
                throw Self.error(400, .badRequest, "InvalidRequest", "encryptionCertificate and encryptionCertificateId must not be empty.")
            }
            if let problem = self.expirationProblem(expiration, resource: stored.subscription.resource, rich: true) { throw problem }
            stored.expiration = expiration
            stored.subscription.expirationDateTime = GraphDate.format(expiration)
            stored.encryptionCertificate = certificate
            stored.subscription.encryptionCertificateId = certificateID
            state.subscriptions[id] = stored
            return (id, stored.subscription)
        }
    }

    func reauthorizeSubscription(id: String) async throws {
        try await call(.reauthorize, id: id) { state in
            var stored = try self.existing(id, in: &state)
            stored.reauthorizations += 1
            state.subscriptions[id] = stored
            return (id, ())
        }
    }

    func deleteSubscription(id: String) async throws {
        try await call(.delete, id: id) { state in
            _ = try self.existing(id, in: &state)
            state.subscriptions[id] = nil
            return (id, ())
        }
    }

    func deltaPage(_ pathOrLink: String) async throws -> [UInt8] {
        try await call(.delta, id: nil) { state in
            guard let body = state.deltaPages[pathOrLink] else {
                throw Self.error(410, .notFound, "SyncStateNotFound", "The sync state is not found.")
            }
            return (nil, Array(body.utf8))
        }
    }

    // MARK: Inside

    /// Waits while `operation` is held, then fails on cue or runs `body` on the state; records the call either way.
    private func call<T: Sendable>(
        _ operation: Operation, id: String?, request: SubscriptionRequest? = nil, certificateID: String? = nil,
        _ body: @Sendable (inout State) throws -> (String?, T)
    ) async throws -> T {
        let resource = request?.resource
        func isHeld(_ state: State) -> Bool {
            state.held.contains { $0.operation == operation && ($0.resource == nil || $0.resource == resource) }
        }
        while state.withLock({ isHeld($0) }) {
            try Task.checkCancellation()
            let waiter = state.withLock { state in
                defer { state.nextWaiter += 1 }
                return state.nextWaiter
            }
            // Cancellable: a manager stopped while its call hangs at Graph must be able to return.
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let free = state.withLock { state in
                        guard isHeld(state), !Task.isCancelled else { return true }
                        state.holdWaiters.append((waiter, continuation))
                        return false
                    }
                    if free { continuation.resume() }
                }
            } onCancel: {
                let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    guard let index = state.holdWaiters.firstIndex(where: { $0.id == waiter }) else { return nil }
                    return state.holdWaiters.remove(at: index).continuation
                }
                continuation?.resume()
            }
        }
        try Task.checkCancellation()
        let outcome: Result<(String?, T), GraphError> = state.withLock { state in
            if var queued = state.faults[operation], !queued.isEmpty {
                let error = queued.removeFirst()
                state.faults[operation] = queued
                return .failure(error)
            }
            do {
                return .success(try body(&state))
            } catch let error as GraphError {
                return .failure(error)
            } catch {
                return .failure(Self.error(500, .serverError, "InternalServerError", "\(error)"))
            }
        }
        var call: Call
        switch outcome {
        case .success(let (answeredID, _)):
            call = Call(
                operation: operation, id: answeredID ?? id, status: operation == .create ? 201 : 200, request: request, certificateID: certificateID)
        case .failure(let error):
            call = Call(operation: operation, id: id, status: error.status, request: request, certificateID: certificateID)
        }
        let (waiters, recorded) = state.withLock { state in
            call.index = state.calls.count
            state.calls.append(call)
            let ready = state.callWaiters.filter { $0.predicate(call) }
            state.callWaiters.removeAll { $0.predicate(call) }
            return (ready.map(\.continuation), call)
        }
        for waiter in waiters { waiter.resume(returning: recorded) }
        return try outcome.get().1
    }

    private func existing(_ id: String, in state: inout State) throws -> Stored {
        guard let stored = state.subscriptions[id], stored.expiration > now() else {
            throw Self.error(404, .notFound, "ResourceNotFound", "The object was not found. Subscription '\(id)' does not exist or has expired.")
        }
        return stored
    }

    private func expirationProblem(_ expiration: Date, resource: String, rich: Bool) -> GraphError? {
        let now = self.now()
        guard expiration > now else {
            return Self.error(400, .badRequest, "InvalidRequest", "Subscription expiration can only be in the future.")
        }
        let maximum = ResourceLifetime.maximum(for: resource, includeResourceData: rich)
        var seconds = Double(maximum.components.seconds)
        if let maxLifetime { seconds = min(seconds, maxLifetime) }
        // Graph's check allows a little slack for the request's travel time.
        guard expiration.timeIntervalSince(now) <= seconds + 1 else {
            return Self.error(400, .badRequest, "ExtensionError", "Subscription expiration can only be \(Int(seconds / 60)) minutes in the future.")
        }
        return nil
    }

    private static func stored(id: String, _ request: SubscriptionRequest) -> Stored {
        // Graph's JSON shape, decoded as the client decodes it.
        var json: [String: Any] = [
            "id": id, "resource": request.resource, "changeType": request.changeTypes.joined(separator: ","),
            "notificationUrl": request.notificationURL, "lifecycleNotificationUrl": request.lifecycleNotificationURL,
            "expirationDateTime": GraphDate.format(request.expiration), "clientState": request.clientState,
            "includeResourceData": request.includeResourceData,
        ]
        if request.includeResourceData { json["encryptionCertificateId"] = request.encryptionCertificateID }
        let subscription = try! JSONDecoder().decode(GraphSubscription.self, from: try! JSONSerialization.data(withJSONObject: json))
        return Stored(subscription: subscription, expiration: request.expiration, encryptionCertificate: request.encryptionCertificate)
    }

    static func error(_ status: Int, _ kind: GraphError.Kind, _ code: String, _ message: String, retryAfter: Duration? = nil) -> GraphError {
        GraphError(kind: kind, status: status, code: code, message: message, requestID: UUID().uuidString.lowercased(), retryAfter: retryAfter)
    }
}
