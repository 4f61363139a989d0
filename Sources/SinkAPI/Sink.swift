@_exported public import BridgeConfig
@_exported public import Transport
public import Logging

/// A sink plugin: the code behind one `type:` of the `sinks:` section.
///
/// Each plugin lives in its own target, depends on this module alone, and decodes its own keys
/// through ``Configuration`` (errors thrown with BridgeConfig's `configError` carry the position).
/// A sink that owns resources for its whole life (a child process, a connection) also conforms
/// to `Service` from swift-service-lifecycle; the delivery engine runs it.
public protocol Sink: Sendable {
    /// The keys of this sink's YAML block, besides the ones the core reads (`type`, `retry`, `concurrency`).
    associatedtype Configuration: Decodable & Sendable

    /// The YAML `type:` that selects this plugin.
    static var typeName: String { get }

    /// How many deliveries to this sink may run at once unless `concurrency:` says otherwise.
    static var defaultConcurrency: Int { get }

    init(name: String, configuration: Configuration, context: SinkContext) throws

    /// Delivers one event. Returning means success; throw ``SinkError`` to say whether to retry.
    /// Any other error is retried.
    func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws

    /// How many events one ``deliver(batch:)`` may carry. 1 (the default): the engine hands this
    /// sink one event per call of ``deliver(_:attempt:)``.
    ///
    /// A sink whose cost is per call rather than per event (one `write(2)` for many lines) says
    /// more, and the engine gives it what is queued, up to this many, in one call. At a trickle
    /// a batch is one event: the engine never waits to fill one.
    var batchLimit: Int { get }

    /// Delivers `batch` (at most ``batchLimit`` events, oldest first) in one operation.
    ///
    /// Returning means every event was delivered. Throw ``SinkBatchError`` to say how many at the
    /// head of the batch were delivered before the failure; any other error counts for the whole
    /// batch (each event is then retried or dead-lettered on its own, as its attempts say). The
    /// default calls ``deliver(_:attempt:)`` for each event in turn and stops at the first failure.
    func deliver(batch: [SinkDelivery]) async throws
}

extension Sink {
    public static var defaultConcurrency: Int { 1 }

    public var batchLimit: Int { 1 }

    public func deliver(batch: [SinkDelivery]) async throws {
        for (index, item) in batch.enumerated() {
            do {
                try await deliver(item.event, attempt: item.attempt)
            } catch {
                throw SinkBatchError(delivered: index, error: error)
            }
        }
    }
}

/// One event of a batch (``Sink/deliver(batch:)``) and which try it is.
public struct SinkDelivery: Sendable {
    public var event: BridgeEvent
    public var attempt: DeliveryAttempt

    public init(event: BridgeEvent, attempt: DeliveryAttempt) {
        self.event = event
        self.attempt = attempt
    }
}

/// A batch that failed after its first `delivered` events were delivered: the rest failed with `error`
/// (a ``SinkError`` says whether to retry; any other error is retried).
public struct SinkBatchError: Error, Sendable, CustomStringConvertible {
    public var delivered: Int
    public var error: any Error

    public init(delivered: Int, error: any Error) {
        self.delivered = delivered
        self.error = error
    }

    public var description: String { "\(error) (after \(delivered) delivered)" }
}

/// What a sink gets from the bridge when it is built.
public struct SinkContext: Sendable {
    /// A logger with `bridge.sink` set to the sink's name.
    public var logger: Logger
    /// The bridge's one outgoing HTTP(S)/SMTP transport, shared by all sinks (in the daemon,
    /// libcurl's `CurlClient`).
    public var transport: any OutgoingTransport

    /// - Parameter transport: defaults to one that refuses every transfer, for sinks that send nothing.
    public init(logger: Logger, transport: any OutgoingTransport = NoOutgoingTransport()) {
        self.logger = logger
        self.transport = transport
    }
}

/// Which try this is, for sinks that report or sign it.
public struct DeliveryAttempt: Sendable, Hashable {
    /// 1 on the first try.
    public var number: Int
    /// The store's id of the (event, sink) delivery.
    public var deliveryID: Int64

    public init(number: Int, deliveryID: Int64) {
        self.number = number
        self.deliveryID = deliveryID
    }
}

/// A delivery failure and what to do about it.
public struct SinkError: Error, Sendable, CustomStringConvertible {
    public enum Disposition: Sendable, Hashable {
        /// Try again later; `after` is the receiver's `Retry-After`, when it gave one.
        case retry(after: Duration?)
        /// Never going to work (e.g. a webhook 400): becomes a dead letter at once.
        case permanent
    }

    public var disposition: Disposition
    public var message: String

    public static func retryable(_ message: String, after: Duration? = nil) -> SinkError {
        SinkError(disposition: .retry(after: after), message: message)
    }

    public static func permanent(_ message: String) -> SinkError {
        SinkError(disposition: .permanent, message: message)
    }

    public var description: String { message }
}
