import SinkAPI
import Crypto
import Foundation

/// The key that signs requests (Standard Webhooks, symmetric `v1`).
///
/// `whsec_<base64>` (the form Standard Webhooks tools generate) uses the decoded bytes as the
/// key; any other text its UTF-8 bytes. The key never appears in descriptions, dumps or errors.
public struct WebhookSecret: Sendable, Decodable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    let key: [UInt8]

    public struct InvalidSecret: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads `text` as written in the configuration.
    public init(_ text: String) throws(InvalidSecret) {
        guard !text.isEmpty else {
            throw InvalidSecret(description: "secret is empty (is its environment variable set?)")
        }
        if text.hasPrefix("whsec_") {
            guard let data = Data(base64Encoded: String(text.dropFirst("whsec_".count))), !data.isEmpty else {
                throw InvalidSecret(description: "secret starts with whsec_ but the rest is not base64 (whsec_ secrets are base64 of random bytes)")
            }
            key = Array(data)
        } else {
            key = Array(text.utf8)
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(text)
        } catch {
            throw decoder.configError(error.description)
        }
    }

    /// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
    func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Data(code).base64EncodedString()
    }

    public var description: String { "WebhookSecret(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
