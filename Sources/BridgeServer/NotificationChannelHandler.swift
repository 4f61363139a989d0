import BridgeCore
import HTTPTypes
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes

/// `POST /notifications` and `POST /lifecycle` answered on the connection's event loop, without a
/// task: the body is collected and read here, the journal write goes straight to the store's
/// writer (``NotificationIntake/receive(body:endpoint:now:completion:)``), and the answer is
/// written when the writer calls back. A request passes through two threads (its event loop and
/// the writer's) instead of four hops through the cooperative pool (docs/performance.md).
///
/// It sits after Hummingbird's `HTTPConnectionStateHandler`, so the idle timeout and a graceful
/// shutdown see its requests, and before Hummingbird's request loop, which gets everything else:
/// the validation handshake (a `validationToken` in the query), `GET /healthz`, other paths and
/// methods, all unchanged. The channel runs with NIO's pipelining assistance, so an answer given
/// here never overtakes the answer to an earlier request that Hummingbird is still working on.
///
/// What the Hummingbird handler did, it does the same: `server.maxBodyBytes` (413, the rest of
/// the body read and dropped), the same answers and headers, the `graph_bridge_ack_seconds` timer,
/// `Connection: close`.
final class NotificationChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request for Hummingbird: its parts pass on.
        case forwarding
        /// A notification POST, its body so far.
        case collecting(NotificationIntake.Endpoint, ByteBuffer?)
        /// A body over the limit: answered 413, the rest is dropped.
        case discarding
        /// The body is in; waiting for the journal (pipelining assistance holds the next request).
        case answering
    }

    private let intake: NotificationIntake
    private let logger: Logger
    private let maxBodyBytes: Int
    private let ackTimers: [NotificationIntake.Endpoint: Timer]
    private let serverName: String
    private let hops: LoopHop.Registry
    /// This channel's event loop's, from `handlerAdded`.
    private var hop: LoopHop?
    private var state = State.idle
    private var started = ContinuousClock.now
    private var closeAfterAnswer = false

    init(
        intake: NotificationIntake, maxBodyBytes: Int, ackTimers: [NotificationIntake.Endpoint: Timer], serverName: String, hops: LoopHop.Registry,
        logger: Logger
    ) {
        self.intake = intake
        self.hops = hops
        self.logger = logger
        self.maxBodyBytes = maxBodyBytes
        self.ackTimers = ackTimers
        self.serverName = serverName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        hop = hops.hop(for: context.eventLoop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            guard let endpoint = Self.endpoint(of: head) else {
                state = .forwarding
                context.fireChannelRead(data)
                return
            }
            started = .now
            closeAfterAnswer = head.headerFields[.connection]?.lowercased() == "close"
            state = .collecting(endpoint, nil)
        case (.forwarding, .end):
            state = .idle
            context.fireChannelRead(data)
        case (.forwarding, _):
            context.fireChannelRead(data)
        case (.collecting(let endpoint, var body), .body(var chunk)):
            state = .idle  // let go of the buffer before appending (no copy on write)
            if (body?.readableBytes ?? 0) + chunk.readableBytes > maxBodyBytes {
                state = .discarding
                answer(.tooLarge(maxBodyBytes, endpoint: endpoint, logger: logger), context: context)
                return
            }
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
            state = .collecting(endpoint, body)
        case (.collecting(let endpoint, let body), .end):
            state = .answering
            receive(body ?? ByteBuffer(), endpoint: endpoint, context: context)
        case (.discarding, .end):
            state = .idle
        case (.discarding, _):
            break
        default:
            // A head where a body or an end belongs: the HTTP decoder never sends one. Let
            // Hummingbird's loop see it and fail the connection as it does.
            state = .forwarding
            context.fireChannelRead(data)
        }
    }

    /// The endpoint a head is for when this handler takes it: a POST to either path, without a
    /// `validationToken` (Hummingbird answers the handshake).
    static func endpoint(of head: HTTPTypes.HTTPRequest) -> NotificationIntake.Endpoint? {
        guard head.method == .post, let target = head.path else { return nil }
        let path: Substring
        if let question = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            if BridgeServer.validationToken(inQuery: String(target[target.index(after: question)...])) != nil { return nil }
            path = target[..<question]
        } else {
            path = target[...]
        }
        switch path {
        case "/notifications": return .notifications
        case "/lifecycle": return .lifecycle
        default: return nil
        }
    }

    private func receive(_ body: ByteBuffer, endpoint: NotificationIntake.Endpoint, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let started = started
        let timer = ackTimers[endpoint]
        // The writer's thread only hands the result over: the counting and the answer run here,
        // one `execute` for all this loop's requests of a commit.
        let hop = hop ?? hops.hop(for: loop)
        intake.receive(body: body.readableBytesView, endpoint: endpoint, hop: { hop($0) }) { outcome in
            timer?.recordElapsed(ContinuousClock.now - started)
            let response = Answer(outcome)
            if loop.inEventLoop {
                let (handler, context) = bound.value
                handler.answerJournaled(response, context: context)
            } else {
                loop.execute {
                    let (handler, context) = bound.value
                    handler.answerJournaled(response, context: context)
                }
            }
        }
    }

    private func answerJournaled(_ response: Answer, context: ChannelHandlerContext) {
        state = .idle
        answer(response, context: context)
    }

    /// Writes the answer with Hummingbird's two headers (`Date`, `Server`); closes the connection
    /// after it when the request asked to.
    private func answer(_ answer: Answer, context: ChannelHandlerContext) {
        var fields = answer.headerFields
        fields[.date] = ResponseDate.now()
        fields[.server] = serverName
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))), promise: nil)
        if let body = answer.body {
            context.write(wrapOutboundOut(.body(body)), promise: nil)
        }
        if closeAfterAnswer {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
