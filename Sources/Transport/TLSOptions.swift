/// How a transfer verifies the server's certificate.
public struct TLSOptions: Sendable, Hashable {
    /// A PEM bundle trusted instead of the system store (neither the system bundle nor its
    /// directory is consulted when set).
    public var caFile: String?
    /// Skips certificate and host name verification. Default `false`; only ever set from an
    /// explicit configuration key.
    public var insecureSkipVerify: Bool

    public init(caFile: String? = nil, insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.insecureSkipVerify = insecureSkipVerify
    }
}
