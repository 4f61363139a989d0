internal import CCurl

/// An SMTP send on its way to the transfer thread.
struct SMTPSubmission: TransferSubmission {
    let id: TransferID
    let envelope: SMTPEnvelope
    let message: [UInt8]
    let completion: TransferCompletion<SMTPResult>

    var isAbandoned: Bool { completion.isDone }

    func makeTransfer(on easy: EasyHandle) throws(TransportError) -> any CurlTransfer {
        try SMTPTransfer(self, on: easy)
    }

    func fail(_ error: any Error) {
        completion.resume(throwing: error)
    }
}

/// An SMTP send in flight: the easy handle, the message it reads from memory, and the server's
/// replies as libcurl passes them to the header callback.
///
/// Each send has a connection of its own (`CURLOPT_FRESH_CONNECT`, `CURLOPT_FORBID_REUSE`):
/// nothing of one SMTP session (its TLS state, its login, a refused envelope) carries over to
/// the next, and a server's idle timeout never hits a pooled connection.
final class SMTPTransfer: CurlTransfer {
    let easy: EasyHandle
    private let completion: TransferCompletion<SMTPResult>
    private let message: [UInt8]
    private var offset = 0
    private var replies = SMTPReplies()

    init(_ submission: SMTPSubmission, on easy: EasyHandle) throws(TransportError) {
        self.easy = easy
        completion = submission.completion
        message = submission.message
        try configure(submission.envelope)
    }

    private func configure(_ envelope: SMTPEnvelope) throws(TransportError) {
        try easy.applyCommonOptions(timeout: envelope.timeout, connectTimeout: envelope.connectTimeout, tls: envelope.tls)
        try easy.set(CURLOPT_URL, envelope.url)
        try easy.set(CURLOPT_PROTOCOLS_STR, envelope.security == .implicit ? "smtps" : "smtp")
        // CURLUSESSL_ALL: STARTTLS or fail (CURLE_USE_SSL_FAILED); never CURLUSESSL_TRY, which
        // would carry on in the clear when the server (or someone in between) drops STARTTLS.
        let useSSL = envelope.security == .none ? CURLUSESSL_NONE : CURLUSESSL_ALL
        try easy.set(CURLOPT_USE_SSL, Int(useSSL.rawValue))
        try easy.set(CURLOPT_FRESH_CONNECT, true)
        try easy.set(CURLOPT_FORBID_REUSE, true)
        if let username = envelope.username, let password = envelope.password {
            try easy.set(CURLOPT_USERNAME, username)
            try easy.set(CURLOPT_PASSWORD, password)
        }
        try easy.set(CURLOPT_MAIL_FROM, "<\(envelope.from)>")
        try easy.set(CURLOPT_MAIL_RCPT, list: envelope.recipients.map { "<\($0)>" })
        try easy.set(CURLOPT_UPLOAD, true)
        try easy.set(CURLOPT_INFILESIZE_LARGE, offset: Int64(message.count))

        // Callbacks get this object unretained: the loop's table keeps it alive while it is in
        // the multi handle, and libcurl calls back only from curl_multi_perform.
        let context = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_READDATA, pointer: context)
        try easy.set(
            CURLOPT_READFUNCTION,
            readCallback: { buffer, size, count, context in
                let transfer = Unmanaged<SMTPTransfer>.fromOpaque(context!).takeUnretainedValue()
                return transfer.fill(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
            })
        // libcurl hands every server reply line of the SMTP dialogue to the header callback.
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        try easy.set(
            CURLOPT_HEADERFUNCTION,
            writeCallback: { data, size, count, context in
                let transfer = Unmanaged<SMTPTransfer>.fromOpaque(context!).takeUnretainedValue()
                transfer.replies.consume(line: UnsafeRawBufferPointer(start: data, count: size * count))
                return size * count
            })
    }

    /// Copies the next part of the message into libcurl's buffer; 0 ends the upload. libcurl
    /// dot-stuffs it and appends `CRLF.CRLF` itself.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, message.count - offset)
        guard count > 0 else { return 0 }
        message.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + count)]))
        }
        offset += count
        return count
    }

    func finish(_ code: CURLcode) {
        let replyCode = easy.info(CURLINFO_RESPONSE_CODE)
        guard code == CURLE_OK else {
            let reply = replies.latest(code: replyCode)
            completion.resume(throwing: Self.error(code: code, detail: easy.errorMessage, replyCode: replyCode, reply: reply))
            return
        }
        completion.resume(returning: SMTPResult(replyCode: replyCode, reply: replies.latest(code: replyCode) ?? ""))
    }

    func fail(_ error: any Error) {
        completion.resume(throwing: error)
    }

    /// A failure after the server answered a command with a 4xx or 5xx reply is that reply
    /// (``TransportError/Kind/smtpRejected``, transient for 4xx); anything else is classified by
    /// libcurl's code (connection, timeout, TLS, ...).
    static func error(code: CURLcode, detail: String, replyCode: Int, reply: String?) -> TransportError {
        let transport = TransportError(code: code, detail: detail)
        let networkOnly = [CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST].contains(code)
        guard (400..<600).contains(replyCode), !networkOnly else { return transport }
        let said = reply ?? "\(replyCode)"
        return TransportError(kind: .smtpRejected, message: "the server replied \(said) (\(transport.message))", smtpReplyCode: replyCode)
    }
}
