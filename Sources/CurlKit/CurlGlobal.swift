internal import CCurl

/// `curl_global_init` exactly once per process, before the first handle is made.
enum CurlGlobal {
    /// Swift runs a global's initialiser once, thread-safely (swift_once).
    private static let initResult: UInt32 = ccurl_global_init_default().rawValue

    /// `nil` when libcurl initialised; otherwise why not.
    static func initialize() -> TransportError? {
        initResult == CURLE_OK.rawValue
            ? nil : TransportError(kind: .other, message: "curl_global_init failed (curl code \(initResult))")
    }
}
