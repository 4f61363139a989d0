import Crypto
import CurlKit
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import _CryptoExtras

/// One notification POST to make (with its retries).
struct DeliveryJob: Sendable {
    var kind: DeliveryAttempt.Kind
    var url: String
    var body: [UInt8]
    var subscriptionIDs: [String]
}

/// Durations in log lines: `250ms`, `5s`, `1m`, `1h 53m`.
enum RetryText {
    static func describe(_ duration: Duration) -> String {
        let milliseconds = Int64(duration.components.seconds) * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let seconds = milliseconds / 1000
        if seconds < 60 { return milliseconds % 1000 == 0 ? "\(seconds)s" : String(format: "%.1fs", Double(milliseconds) / 1000) }
        let (hours, minutes, rest) = (seconds / 3600, seconds % 3600 / 60, seconds % 60)
        var parts: [String] = []
        if hours > 0 { parts.append("\(hours)h") }
        if minutes > 0 { parts.append("\(minutes)m") }
        if rest > 0 { parts.append("\(rest)s") }
        return parts.joined(separator: " ")
    }
}

/// Jobs queued by the Swift API, consumed by ``DeliveryService`` while the simulator runs.
final class DeliveryQueue: Sendable {
    let stream: AsyncStream<DeliveryJob>
    private let continuation: AsyncStream<DeliveryJob>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: DeliveryJob.self)
    }

    func enqueue(_ job: DeliveryJob) { continuation.yield(job) }
    func finish() { continuation.finish() }
}

/// Runs every queued delivery concurrently, each with Graph's retry schedule; stops on graceful shutdown.
struct DeliveryService: Service {
    let simulator: GraphSimulator

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for await job in simulator.queue.stream.cancelOnGracefulShutdown() {
                group.addTask { await simulator.deliver(job) }
            }
            group.cancelAll()
        }
    }
}

extension GraphSimulator {
    /// POSTs `job` until a 2xx, waiting ``Configuration/retrySchedule`` between tries; records every
    /// try. A refused connection, a timeout and a non-2xx answer are all failures (graph-protocol
    /// 3.2). Each failure is logged at `warning` (what happened, when the next retry is), a success
    /// after failures at `notice`, and giving up at `error`: the lines an operator of `graph-bridge
    /// simulator` sees at its default level.
    func deliver(_ job: DeliveryJob) async {
        let schedule = configuration.retrySchedule
        let clock = ContinuousClock()
        let started = clock.now
        var metadata: Logger.Metadata = [
            "bridge.url": "\(job.url)", "bridge.kind": "\(job.kind.rawValue)",
            "bridge.subscriptions": "\(job.subscriptionIDs.joined(separator: ","))",
        ]
        for attempt in 1...(schedule.count + 1) {
            let request = CurlKit.HTTPRequest(
                method: "POST", url: job.url, headers: [("Content-Type", "application/json; charset=utf-8")], body: job.body,
                timeout: configuration.notificationTimeout, connectTimeout: configuration.notificationTimeout)
            var record = DeliveryAttempt(
                kind: job.kind, url: job.url, subscriptionIDs: job.subscriptionIDs, attempt: attempt, status: nil, error: nil, body: job.body,
                date: Date(),
                isFinal: attempt == schedule.count + 1)
            let outcome: String
            do {
                let response = try await client.execute(request)
                record.status = response.status
                outcome = "HTTP \(response.status)"
            } catch is CancellationError {
                return
            } catch let error as TransportError {
                record.error = "\(error)"
                outcome = error.message
            } catch {
                record.error = "\(error)"
                outcome = "\(error)"
            }
            if record.succeeded { record.isFinal = true }
            let entry = record
            deliveryLog.append(entry)
            metadata["bridge.attempt"] = "\(attempt)"
            if entry.succeeded {
                if attempt > 1 {
                    metadata["bridge.outcome"] = "HTTP \(entry.status ?? 0)"
                    metadata["bridge.retry_in"] = nil
                    metadata["bridge.retries_left"] = nil
                    metadata["bridge.since_first_attempt"] = "\(RetryText.describe(clock.now - started))"
                    logger.notice("notification delivered on a retry", metadata: metadata)
                }
                return
            }
            metadata["bridge.outcome"] = "\(outcome)"
            if attempt <= schedule.count {
                let wait = schedule[attempt - 1]
                metadata["bridge.retry_in"] = "\(RetryText.describe(wait))"
                metadata["bridge.retries_left"] = "\(schedule.count - attempt + 1)"
                logger.warning("notification not delivered; will retry", metadata: metadata)
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    return
                }
            } else {
                metadata["bridge.retry_in"] = nil
                metadata["bridge.retries_left"] = nil
                metadata["bridge.since_first_attempt"] = "\(RetryText.describe(clock.now - started))"
                logger.error("notification dropped after the last retry", metadata: metadata)
            }
        }
    }
}

extension GraphSimulator {
    /// Queues the POSTs for items (one per URL, as Graph batches), twice when duplicates are on.
    func enqueue(kind: DeliveryAttempt.Kind, items: [(url: String, subscriptionID: String, item: JSONValue, rich: Bool)]) {
        var order: [String] = []
        var byURL: [String: [(subscriptionID: String, item: JSONValue, rich: Bool)]] = [:]
        for entry in items {
            if byURL[entry.url] == nil { order.append(entry.url) }
            byURL[entry.url, default: []].append((entry.subscriptionID, entry.item, entry.rich))
        }
        let duplicates = state.withLock { $0.duplicateNotifications }
        for url in order {
            let batch = byURL[url] ?? []
            var members: [JSONValue.Member] = [.init("value", .array(batch.map(\.item)))]
            if batch.contains(where: \.rich), let token = try? makeValidationToken() {
                members.append(.init("validationTokens", .array([.string(token)])))
            }
            let job = DeliveryJob(kind: kind, url: url, body: JSONValue.object(members).bytes, subscriptionIDs: batch.map(\.subscriptionID))
            queue.enqueue(job)
            if duplicates { queue.enqueue(job) }
        }
    }

    /// Builds and queues change notifications for `message`; returns the subscriptions notified.
    func notify(_ message: SimulatedMessage, change: ChangeType) -> [String] {
        guard recordDeltaChange(message, change: change) else { return [] }  // notifications dropped
        let matching = subscriptions.filter { subscription($0, matches: message, change: change) }
        let resource = "Users/\(message.userID)/Messages/\(message.id)"
        var items: [(url: String, subscriptionID: String, item: JSONValue, rich: Bool)] = []
        for subscription in matching {
            var members: [JSONValue.Member] = [
                .init("id", .string(Identifiers.random(bytes: 10))),
                .init("subscriptionId", .string(subscription.id)),
                .init("subscriptionExpirationDateTime", .string(GraphDate.subscriptionFormat(subscription.expirationDateTime))),
                .init("clientState", .optional(subscription.clientState)),
                .init("changeType", .string(change.rawValue)),
                .init("resource", .string(resource)),
                .init("tenantId", .string(configuration.tenantID)),
                .init(
                    "resourceData",
                    .object([
                        "@odata.type": "#Microsoft.Graph.Message",
                        "@odata.id": .string(resource),
                        "@odata.etag": .string(message.etag),
                        "id": .string(message.id),
                    ])),
            ]
            if subscription.includeResourceData, change != .deleted, let encrypted = try? encryptedContent(for: message, subscription: subscription) {
                members.append(.init("encryptedContent", encrypted))
            }
            items.append((subscription.notificationURL, subscription.id, .object(members), subscription.includeResourceData))
        }
        enqueue(kind: .changeNotification, items: items)
        return matching.map(\.id)
    }

    // MARK: Lifecycle events

    /// Sends a lifecycle notification for a subscription to its `lifecycleNotificationUrl` (its
    /// `notificationUrl` when it has none). `subscriptionRemoved` also removes the subscription.
    ///
    /// - Throws: ``SimulatorError`` when the subscription doesn't exist (or expired).
    @discardableResult
    public func sendLifecycleEvent(_ event: LifecycleEvent, subscriptionID: String) throws -> SimulatedSubscription {
        try sendLifecycleEvents([event], subscriptionID: subscriptionID)
    }

    /// Sends several lifecycle events for one subscription in one POST (like the `lifecycle_batch` sample).
    @discardableResult
    public func sendLifecycleEvents(_ events: [LifecycleEvent], subscriptionID: String) throws -> SimulatedSubscription {
        let found: SimulatedSubscription? = state.withLock { state in
            state.purgeExpired(now: Date())
            guard let subscription = state.subscriptions[subscriptionID] else { return nil }
            if events.contains(.subscriptionRemoved) { state.subscriptions[subscriptionID] = nil }
            return subscription
        }
        guard let subscription = found else { throw SimulatorError(message: "no active subscription '\(subscriptionID)'") }
        let url = subscription.lifecycleNotificationURL ?? subscription.notificationURL
        let items = events.map { event in
            (
                url: url, subscriptionID: subscription.id,
                item: JSONValue.object([
                    "subscriptionId": .string(subscription.id),
                    "subscriptionExpirationDateTime": .string(GraphDate.subscriptionFormat(subscription.expirationDateTime)),
                    "tenantId": .string(configuration.tenantID),
                    "clientState": .optional(subscription.clientState),
                    "lifecycleEvent": .string(event.rawValue),
                ]), rich: false
            )
        }
        enqueue(kind: .lifecycleNotification, items: items)
        return subscription
    }

    // MARK: Rich notifications

    /// `encryptedContent` (graph-protocol 5.2/5.3): the message's `$select`ed properties as JSON,
    /// AES-256-CBC with a fresh 32-byte key (IV = its first 16 bytes), HMAC-SHA256 over the
    /// ciphertext, the key wrapped with RSA-OAEP-SHA1 for the subscription's certificate.
    func encryptedContent(for message: SimulatedMessage, subscription: SimulatedSubscription) throws -> JSONValue {
        guard let certificateBase64 = subscription.encryptionCertificate, let der = Data(base64Encoded: certificateBase64) else {
            throw SimulatorError(message: "subscription has no encryption certificate")
        }
        let certificate = try RegisteredCertificate(der: Array(der))
        let spki = try RegisteredCertificate.subjectPublicKeyInfo(Array(der))
        let wrappingKey = try _RSA.Encryption.PublicKey(derRepresentation: spki)
        let selected = ResourcePath(subscription.resource).selectedProperties
        var plain = messageJSON(message, selecting: selected)
        plain = plain.setting("@odata.type", "#Microsoft.Graph.Message").setting(
            "@odata.id", .string("Users/\(message.userID)/Messages/\(message.id)"))
        let keyBytes = Identifiers.randomBytes(32)
        let key = SymmetricKey(data: keyBytes)
        let ciphertext = try AES._CBC.encrypt(plain.bytes, using: key, iv: AES._CBC.IV(ivBytes: keyBytes.prefix(16)))
        let signature = HMAC<SHA256>.authenticationCode(for: ciphertext, using: key)
        let dataKey = try wrappingKey.encrypt(keyBytes, padding: .PKCS1_OAEP)
        return .object([
            "data": .string(ciphertext.base64EncodedString()),
            "dataSignature": .string(Data(signature).base64EncodedString()),
            "dataKey": .string(dataKey.base64EncodedString()),
            "encryptionCertificateId": .optional(subscription.encryptionCertificateID),
            "encryptionCertificateThumbprint": .string(Identifiers.hex(certificate.sha1)),
        ])
    }
}
