import Foundation

/// The PEM armour around DER (`-----BEGIN LABEL-----`), as certificate files come.
enum PEM {
    /// The DER bytes of the first `label` block; nil when there is none or it is not base64.
    static func firstBlock(_ pem: String, label: String) -> Data? {
        guard let start = pem.range(of: "-----BEGIN \(label)-----"),
            let end = pem.range(of: "-----END \(label)-----", range: start.upperBound..<pem.endIndex)
        else { return nil }
        let base64 = pem[start.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(base64))
    }
}
