/// `encryptedContent` of a rich notification item (graph-protocol 5.2), as Graph sends it.
public struct EncryptedContent: Sendable, Hashable {
    /// base64 AES-256-CBC ciphertext.
    public var data: String
    /// base64 RSA-OAEP-SHA1 wrapped 32-byte key.
    public var dataKey: String
    /// base64 HMAC-SHA256 of the decoded `data`, keyed with the unwrapped key.
    public var dataSignature: String
    /// The `encryptionCertificateId` the subscription was created with.
    public var encryptionCertificateId: String
    /// Hex SHA-1 of the certificate Graph encrypted for, when present.
    public var encryptionCertificateThumbprint: String?

    public init(data: String, dataKey: String, dataSignature: String, encryptionCertificateId: String, encryptionCertificateThumbprint: String? = nil)
    {
        self.data = data
        self.dataKey = dataKey
        self.dataSignature = dataSignature
        self.encryptionCertificateId = encryptionCertificateId
        self.encryptionCertificateThumbprint = encryptionCertificateThumbprint
    }
}
