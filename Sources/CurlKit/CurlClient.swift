// CurlKit speaks the Transport vocabulary: its users need not import it separately.
@_exported public import Transport
import Synchronization

/// The project's outgoing HTTP(S) and SMTP client, on the system libcurl.
///
/// One dedicated thread drives one libcurl multi handle for all of a client's transfers, so
/// connections are kept alive and reused, and no blocking libcurl call runs on the cooperative
/// pool. Callers suspend until their transfer completes. Share one client per process part;
/// call ``shutdown()`` when done (dropping the last reference also stops the thread).
///
/// ```swift
/// let client = CurlClient()
/// let response = try await client.execute(HTTPRequest(method: "POST", url: url, body: bytes))
/// if response.status == 429, let wait = response.retryAfter { ... }
/// ```
public final class CurlClient: Sendable {
    public struct Configuration: Sendable {
        /// Certificate verification for requests that don't pass their own.
        public var tls: TLSOptions
        /// The `User-Agent` header. Default `graph-bridge`.
        public var userAgent: String
        /// Responses with a larger body fail with ``TransportError/Kind/tooLarge``. Default 16 MiB.
        public var maxResponseBytes: Int
        /// Connections open at once to one host; further transfers queue. Default 8.
        public var maxHostConnections: Int
        /// Connections kept open (idle) for reuse across all hosts; the oldest beyond this are
        /// closed. Default 32.
        public var maxIdleConnections: Int = 32

        public init(
            tls: TLSOptions = .init(),
            userAgent: String = "graph-bridge",
            maxResponseBytes: Int = 16 << 20,
            maxHostConnections: Int = 8
        ) {
            self.tls = tls
            self.userAgent = userAgent
            self.maxResponseBytes = maxResponseBytes
            self.maxHostConnections = maxHostConnections
        }
    }

    public let configuration: Configuration
    private let engine: TransferEngine

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        engine = TransferEngine(
            limits: .init(
                maxHostConnections: max(1, configuration.maxHostConnections),
                maxIdleConnections: max(1, configuration.maxIdleConnections)
            ))
    }

    deinit {
        engine.requestStop()
    }

    /// Sends `request` and returns the final response, whatever its status.
    ///
    /// - Parameter tls: overrides ``Configuration/tls`` for this request.
    /// - Throws: ``TransportError`` when no response arrived; `CancellationError` when the calling
    ///   task was cancelled (the transfer is then abandoned and its connection closed).
    public func execute(_ request: HTTPRequest, tls: TLSOptions? = nil) async throws -> HTTPResponse {
        try request.validate()
        let completion = TransferCompletion<HTTPResponse>()
        let submission = HTTPSubmission(
            id: engine.makeID(),
            request: request,
            tls: tls ?? configuration.tls,
            settings: HTTPSettings(userAgent: configuration.userAgent, maxResponseBytes: configuration.maxResponseBytes),
            completion: completion
        )
        return try await perform(submission, completion: completion)
    }

    /// Sends one message over SMTP: connects (with STARTTLS or implicit TLS as
    /// ``SMTPEnvelope/security`` says), logs in if the envelope has a login, sends the envelope
    /// and uploads `message` as it is. libcurl dot-stuffs the message and ends it with `CRLF.CRLF`.
    ///
    /// - Parameter message: a complete RFC 5322 message, headers and body, lines ending in CRLF.
    /// - Returns: the server's final reply once it has accepted the message.
    /// - Throws: ``TransportError``: ``TransportError/Kind/smtpRejected`` with ``TransportError/smtpReplyCode``
    ///   when the server refused a step (4xx transient, 5xx permanent); ``TransportError/Kind/tls``
    ///   when STARTTLS is missing or the certificate fails verification; connection and timeout
    ///   kinds as for HTTP; ``TransportError/Kind/invalidRequest`` for a malformed envelope or message.
    ///   `CancellationError` when the calling task was cancelled (the connection is closed).
    public func sendMail(_ envelope: SMTPEnvelope, message: [UInt8]) async throws -> SMTPResult {
        try envelope.validate()
        try SMTPEnvelope.validateMessage(message)
        let completion = TransferCompletion<SMTPResult>()
        let submission = SMTPSubmission(id: engine.makeID(), envelope: envelope, message: message, completion: completion)
        return try await perform(submission, completion: completion)
    }

    /// Hands `submission` to the transfer thread and suspends until it completes; cancelling the
    /// calling task resumes at once and abandons the transfer.
    private func perform<Output: Sendable>(
        _ submission: some TransferSubmission,
        completion: TransferCompletion<Output>
    ) async throws -> Output {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if completion.install(continuation) { engine.submit(submission) }
            }
        } onCancel: {
            if completion.cancel() { engine.cancel(submission.id) }
        }
    }

    /// libcurl easy handles made so far; transfers after the first reuse those of finished ones.
    var easyHandlesMade: Int { engine.handlesMade.load(ordering: .relaxed) }

    /// Fails pending and running transfers with ``TransportError/Kind/shutdown``, then stops the
    /// transfer thread and returns. Later calls to ``execute(_:tls:)`` and
    /// ``sendMail(_:message:)`` fail the same way.
    /// Calling it again is harmless.
    public func shutdown() async {
        await engine.stop()
    }
}

extension CurlClient: OutgoingTransport {}
