/// What sends a sink's outgoing HTTP(S) requests and SMTP messages.
///
/// The bridge hands every sink one shared transport in its `SinkContext`: `CurlClient` (CurlKit,
/// libcurl's multi interface, one connection pool for all sinks). Sinks see only this protocol,
/// so a sink target depends on the sink API alone and its tests can pass a transport of their own.
///
/// Failures to transfer throw ``TransportError``; an HTTP error status is a response, not an error.
public protocol OutgoingTransport: Sendable {
    /// Sends one HTTP(S) request and returns the final response. `tls` overrides the transport's
    /// own certificate verification for this request.
    func execute(_ request: HTTPRequest, tls: TLSOptions?) async throws -> HTTPResponse

    /// Submits one message (CRLF line ends, headers and body) to the envelope's SMTP server.
    func sendMail(_ envelope: SMTPEnvelope, message: [UInt8]) async throws -> SMTPResult
}

/// A transport for sinks that send nothing (stdout, file) and for tests of them: every call
/// fails with ``TransportError/Kind/invalidRequest``, so a wiring mistake shows at once.
public struct NoOutgoingTransport: OutgoingTransport {
    public init() {}

    public func execute(_ request: HTTPRequest, tls: TLSOptions?) async throws -> HTTPResponse {
        throw TransportError.invalidRequest("this sink was built without an outgoing transport")
    }

    public func sendMail(_ envelope: SMTPEnvelope, message: [UInt8]) async throws -> SMTPResult {
        throw TransportError.invalidRequest("this sink was built without an outgoing transport")
    }
}

extension OutgoingTransport {
    /// Sends `request` with the transport's own certificate verification.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await execute(request, tls: nil)
    }
}
