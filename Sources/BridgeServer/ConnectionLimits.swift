import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// How long a listener waits for clients, and how many it serves at once (`server.idleTimeout`,
/// `server.requestTimeout`, `server.maxConnections`).
///
/// What Hummingbird and NIO already offer does most of it:
/// - `idleTimeout` is Hummingbird's own (`HTTP1Channel.Configuration.idleTimeout`, its
///   `HTTPConnectionStateHandler`): a connection that has sent no HTTP part for that long, and is
///   not waiting for its answer, is closed. That covers a silent connection, a keep-alive between
///   requests, a half-sent head, and a TLS handshake that never finishes.
/// - `maxConnections` is Hummingbird's `MaximumAvailableConnections`: at the cap the server
///   channel stops accepting, and new connections wait in the kernel's listen backlog until one
///   closes. NIO accepts up to `maxMessagesPerRead` (4) connections per wake-up before the cap is
///   consulted again, so the server channel is set to 1 once bound (`limitAccepts(on:)`).
/// - `requestTimeout` is not offered (an idle timeout restarts with every body chunk, so a client
///   trickling one byte at a time would hold a connection for ever): `RequestDeadlineHandler`
///   closes a connection whose request has not fully arrived `requestTimeout` after its first byte.
public struct ConnectionLimits: Sendable {
    public var idleTimeout: Duration
    public var requestTimeout: Duration
    public var maxConnections: Int

    public static let `default` = ConnectionLimits(idleTimeout: .seconds(30), requestTimeout: .seconds(30), maxConnections: 1024)

    public init(idleTimeout: Duration, requestTimeout: Duration, maxConnections: Int) {
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
    }

    /// Hummingbird's HTTP/1 channel with the idle timeout, behind the request deadline; with
    /// `notifications`, the notification POSTs are answered on the event loop (see
    /// `NotificationChannelHandler`).
    func serverBuilder(listener: String, notifications: (@Sendable () -> NotificationChannelHandler)? = nil) -> HTTPServerBuilder {
        let idle = TimeAmount(idleTimeout)
        let deadline = TimeAmount(requestTimeout)
        let timeouts = Counter(label: "graph_bridge_request_timeouts_total", dimensions: [("listener", listener)])
        return HTTPServerBuilder { responder in
            DeadlineHTTP1Channel(
                base: HTTP1Channel(responder: responder, configuration: .init(additionalChannelHandlers: [RequestEndHandler()], idleTimeout: idle)),
                requestTimeout: deadline,
                timeouts: timeouts,
                notifications: notifications
            )
        }
    }

    /// Accept one connection per wake-up, so that the connection cap holds exactly.
    static func limitAccepts(on serverChannel: any Channel) async {
        try? await serverChannel.setOption(ChannelOptions.maxMessagesPerRead, value: 1).get()
    }
}

/// Hummingbird's `HTTP1Channel` with `RequestDeadlineHandler` in front of its HTTP decoder (after
/// TLS, when the listener serves HTTPS), and `NotificationChannelHandler` (when given) between its
/// connection state handler and its request loop.
///
/// `setup` is `HTTP1Channel.setup` (Hummingbird 2.x) with those two additions: the pipeline it
/// builds is public API, and the handler must sit after the connection state handler, which
/// `additionalChannelHandlers` come before. With the notification handler, NIO's pipelining
/// assistance is on, so answers leave in the order of their requests.
struct DeadlineHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let requestTimeout: TimeAmount
    let timeouts: Counter
    var notifications: (@Sendable () -> NotificationChannelHandler)?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(RequestDeadlineHandler(timeout: requestTimeout, timeouts: timeouts))
            let configuration = base.configuration
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
            limits.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
            limits.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: notifications != nil,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandlers(configuration.additionalChannelHandlers())
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: configuration.idleTimeout.map { Duration($0) }, logger: logger))
            if let notifications { try pipeline.addHandler(notifications()) }
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Told by `RequestEndHandler` that the request being read has fully arrived.
struct RequestFullyReceived: Sendable {}

/// Closes the connection when a request has not fully arrived `timeout` after its first byte.
///
/// It sits before the HTTP decoder, so it sees the first byte of a request (the decoder reports a
/// head only once all of it is in); `RequestEndHandler`, after the decoder, tells it with an
/// outbound user event when the request's end is in. A connection that sends nothing is the
/// idle timeout's business, not this one's.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let timeout: TimeAmount
    private let timeouts: Counter
    private var reading = false
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, timeouts: Counter) {
        self.timeout = timeout
        self.timeouts = timeouts
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let starting = !reading
        reading = true
        context.fireChannelRead(data)
        // A request that arrived whole in this read has already been reported: nothing to time.
        if starting, reading, deadline == nil {
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                deadline = nil
                guard reading else { return }
                timeouts.increment()
                context.close(promise: nil)
            }
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is RequestFullyReceived else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        reading = false
        cancelDeadline()
        promise?.succeed()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelDeadline()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadline()
    }

    private func cancelDeadline() {
        deadline?.cancel()
        deadline = nil
    }
}

/// After the HTTP decoder: reports each request's end to `RequestDeadlineHandler`.
final class RequestEndHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            context.triggerUserOutboundEvent(RequestFullyReceived(), promise: nil)
        }
        context.fireChannelRead(data)
    }
}
