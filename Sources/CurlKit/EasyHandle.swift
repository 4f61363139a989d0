internal import CCurl

/// A libcurl easy handle and the C memory it needs; confined to the transfer thread.
///
/// Options are set through the typed shims. Lists and the error buffer live as long as the handle.
final class EasyHandle {
    let raw: OpaquePointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var lists: [UnsafeMutablePointer<curl_slist>] = []

    init() throws(TransportError) {
        if let failure = CurlGlobal.initialize() { throw failure }
        guard let raw = curl_easy_init() else {
            throw TransportError(kind: .other, message: "curl_easy_init failed")
        }
        self.raw = raw
        let size = Int(CURL_ERROR_SIZE)
        errorBuffer = .allocate(capacity: size)
        errorBuffer.initialize(repeating: 0, count: size)
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    /// Puts every option back to its default, as `curl_easy_init` left it, so the handle can
    /// carry another transfer (``TransferLoop`` keeps a few). libcurl keeps what belongs to the
    /// handle, not to a transfer: its DNS and TLS session caches. The handle must be out of any
    /// multi handle. Returns false if the handle cannot be used again (drop it).
    func reset() -> Bool {
        curl_easy_reset(raw)
        for list in lists { curl_slist_free_all(list) }
        lists.removeAll(keepingCapacity: true)
        errorBuffer[0] = 0
        do {
            try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        } catch {
            return false
        }
        return true
    }

    deinit {
        // The handle must already be out of any multi handle (the transfer loop removes it first).
        curl_easy_cleanup(raw)
        for list in lists { curl_slist_free_all(list) }
        errorBuffer.deallocate()
    }

    /// libcurl's text for the last failure on this handle, empty if it wrote none.
    var errorMessage: String {
        String(cString: errorBuffer)
    }

    func set(_ option: CURLoption, _ value: Int) throws(TransportError) {
        try check(ccurl_easy_setopt_long(raw, option, value), option)
    }

    func set(_ option: CURLoption, _ value: Bool) throws(TransportError) {
        try set(option, value ? 1 : 0)
    }

    func set(_ option: CURLoption, offset value: Int64) throws(TransportError) {
        try check(ccurl_easy_setopt_off_t(raw, option, curl_off_t(value)), option)
    }

    /// libcurl copies strings; `nil` restores the option's default (or disables it).
    func set(_ option: CURLoption, _ value: String?) throws(TransportError) {
        let code: CURLcode =
            if let value { value.withCString { ccurl_easy_setopt_string(raw, option, $0) } } else {
                ccurl_easy_setopt_string(raw, option, nil)
            }
        try check(code, option)
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws(TransportError) {
        try check(ccurl_easy_setopt_pointer(raw, option, pointer), option)
    }

    /// CURLOPT_COPYPOSTFIELDS: libcurl copies CURLOPT_POSTFIELDSIZE(_LARGE) bytes, so set the size first.
    func setCopiedPostFields(_ bytes: [UInt8]) throws(TransportError) {
        guard !bytes.isEmpty else {
            try set(CURLOPT_COPYPOSTFIELDS, "")  // an empty array may have no storage to point at
            return
        }
        let code = bytes.withUnsafeBytes { buffer in
            ccurl_easy_setopt_pointer(raw, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress))
        }
        try check(code, CURLOPT_COPYPOSTFIELDS)
    }

    /// Builds a `curl_slist` kept alive until the handle goes away.
    func set(_ option: CURLoption, list: [String]) throws(TransportError) {
        var head: UnsafeMutablePointer<curl_slist>?
        for item in list {
            guard let appended = curl_slist_append(head, item) else {
                if let head { curl_slist_free_all(head) }
                throw TransportError(kind: .other, message: "curl_slist_append failed")
            }
            head = appended
        }
        if let head { lists.append(head) }
        try check(ccurl_easy_setopt_slist(raw, option, head), option)
    }

    func set(_ option: CURLoption, writeCallback: curl_write_callback) throws(TransportError) {
        try check(ccurl_easy_setopt_write_callback(raw, option, writeCallback), option)
    }

    func set(_ option: CURLoption, readCallback: curl_read_callback) throws(TransportError) {
        try check(ccurl_easy_setopt_read_callback(raw, option, readCallback), option)
    }

    func info(_ item: CURLINFO) -> Int {
        var value = 0
        _ = ccurl_easy_getinfo_long(raw, item, &value)
        return value
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws(TransportError) {
        guard code != CURLE_OK else { return }
        let text = String(cString: curl_easy_strerror(code))
        throw TransportError(kind: .invalidRequest, message: "curl option \(option.rawValue): \(text) (curl code \(code.rawValue))")
    }
}

extension EasyHandle {
    /// Options every kind of transfer shares: no signals, timeouts, TLS verification.
    func applyCommonOptions(timeout: Duration, connectTimeout: Duration, tls: TLSOptions) throws(TransportError) {
        try set(CURLOPT_NOSIGNAL, true)
        try set(CURLOPT_TCP_NODELAY, true)
        try set(CURLOPT_TIMEOUT_MS, timeout.curlMilliseconds)
        try set(CURLOPT_CONNECTTIMEOUT_MS, connectTimeout.curlMilliseconds)
        if let caFile = tls.caFile {
            try set(CURLOPT_CAINFO, caFile)
            try set(CURLOPT_CAPATH, nil as String?)
        }
        if tls.insecureSkipVerify {
            try set(CURLOPT_SSL_VERIFYPEER, false)
            try set(CURLOPT_SSL_VERIFYHOST, 0)
        }
    }
}

extension Duration {
    /// Whole milliseconds for a libcurl timeout, at least 1 (curl reads 0 as "no limit").
    var curlMilliseconds: Int {
        let (seconds, attoseconds) = components
        let (millis, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow || seconds < 0 { return seconds < 0 ? 1 : Int.max }
        return max(1, Int(clamping: millis) + Int(attoseconds / 1_000_000_000_000_000))
    }
}
