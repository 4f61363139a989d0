internal import CCurl

/// Per-client settings an HTTP transfer needs besides the request.
struct HTTPSettings: Sendable {
    var userAgent: String
    var maxResponseBytes: Int
}

/// An HTTP request on its way to the transfer thread.
struct HTTPSubmission: TransferSubmission {
    let id: TransferID
    let request: HTTPRequest
    let tls: TLSOptions
    let settings: HTTPSettings
    let completion: TransferCompletion<HTTPResponse>

    var isAbandoned: Bool { completion.isDone }

    func makeTransfer(on easy: EasyHandle) throws(TransportError) -> any CurlTransfer {
        try HTTPTransfer(self, on: easy)
    }

    func fail(_ error: any Error) {
        completion.resume(throwing: error)
    }
}

/// An HTTP request in flight: the easy handle and what its callbacks collect.
final class HTTPTransfer: CurlTransfer {
    let easy: EasyHandle
    private let completion: TransferCompletion<HTTPResponse>
    private let maxResponseBytes: Int
    private var head = ResponseHead()
    private var body: [UInt8] = []
    private var exceededLimit = false

    init(_ submission: HTTPSubmission, on easy: EasyHandle) throws(TransportError) {
        self.easy = easy
        completion = submission.completion
        maxResponseBytes = submission.settings.maxResponseBytes
        try configure(submission.request, tls: submission.tls, userAgent: submission.settings.userAgent)
    }

    private func configure(_ request: HTTPRequest, tls: TLSOptions, userAgent: String) throws(TransportError) {
        try easy.applyCommonOptions(timeout: request.timeout, connectTimeout: request.connectTimeout, tls: tls)
        try easy.set(CURLOPT_URL, request.url)
        try easy.set(CURLOPT_PROTOCOLS_STR, "http,https")
        try easy.set(CURLOPT_FOLLOWLOCATION, false)
        try easy.set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        try easy.set(CURLOPT_USERAGENT, userAgent)
        try easy.set(CURLOPT_MAXFILESIZE_LARGE, offset: Int64(maxResponseBytes))

        var headerLines = request.headers.map { header in
            // "Name:" would tell libcurl to drop the header; "Name;" sends it with an empty value.
            header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
        }
        // Never wait for 100-continue (libcurl asks for it on large bodies) unless the caller insists.
        if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            headerLines.append("Expect:")
        }

        // POST, PUT and PATCH always send a body: `Content-Length: 0` when the request has none.
        let method = request.method
        let body = request.body ?? (["POST", "PUT", "PATCH"].contains(method) ? [] : nil)
        switch (method, body) {
        case ("HEAD", _):
            try easy.set(CURLOPT_NOBODY, true)
        case ("GET", nil):
            try easy.set(CURLOPT_HTTPGET, true)
        case (_, let body?):
            // Size first: set after COPYPOSTFIELDS it drops the body (FIELD-NOTES).
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
            try easy.setCopiedPostFields(body)
            if method != "POST" { try easy.set(CURLOPT_CUSTOMREQUEST, method) }
            if !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
                headerLines.append("Content-Type:")  // no form-urlencoded default
            }
        case (_, nil):
            try easy.set(CURLOPT_HTTPGET, true)
            try easy.set(CURLOPT_CUSTOMREQUEST, method)
        }
        try easy.set(CURLOPT_HTTPHEADER, list: headerLines)

        // Callbacks get this object unretained: the loop's table keeps it alive while it is in
        // the multi handle, and libcurl calls back only from curl_multi_perform.
        let context = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(
            CURLOPT_WRITEFUNCTION,
            writeCallback: { data, size, count, context in
                let transfer = Unmanaged<HTTPTransfer>.fromOpaque(context!).takeUnretainedValue()
                return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
            })
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        try easy.set(
            CURLOPT_HEADERFUNCTION,
            writeCallback: { data, size, count, context in
                let transfer = Unmanaged<HTTPTransfer>.fromOpaque(context!).takeUnretainedValue()
                transfer.head.consume(line: UnsafeRawBufferPointer(start: data, count: size * count))
                return size * count
            })
    }

    /// Returns the byte count taken; anything else makes libcurl fail with CURLE_WRITE_ERROR.
    private func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard body.count + bytes.count <= maxResponseBytes else {
            exceededLimit = true
            return 0
        }
        body.append(contentsOf: bytes)
        return bytes.count
    }

    func finish(_ code: CURLcode) {
        guard code == CURLE_OK else {
            let error =
                exceededLimit || code == CURLE_FILESIZE_EXCEEDED
                ? TransportError.tooLarge(limit: maxResponseBytes) : TransportError(code: code, detail: easy.errorMessage)
            completion.resume(throwing: error)
            return
        }
        let status = easy.info(CURLINFO_RESPONSE_CODE)
        completion.resume(returning: HTTPResponse(status: status, headers: head.headers, body: body))
    }

    func fail(_ error: any Error) {
        completion.resume(throwing: error)
    }
}
