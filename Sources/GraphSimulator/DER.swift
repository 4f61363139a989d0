import Foundation

/// Just enough DER to read a certificate's SubjectPublicKeyInfo and to write a self-signed
/// certificate: tag-length-value with definite lengths.
enum DER {
    struct Node {
        var tag: UInt8
        /// The contents octets.
        var contents: ArraySlice<UInt8>
        /// The whole TLV, tag and length included.
        var encoded: ArraySlice<UInt8>

        /// The TLVs inside a constructed node.
        func children() throws(CertificateError) -> [Node] { try DER.parse(contents) }
    }

    static func parse(_ bytes: ArraySlice<UInt8>) throws(CertificateError) -> [Node] {
        var nodes: [Node] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let start = index
            let tag = bytes[index]
            index += 1
            guard index < bytes.endIndex else { throw .malformed("truncated DER length") }
            var length = Int(bytes[index])
            index += 1
            if length & 0x80 != 0 {
                let count = length & 0x7F
                guard count > 0, count <= 4, index + count <= bytes.endIndex else { throw .malformed("bad DER length") }
                length = 0
                for byte in bytes[index..<index + count] { length = length << 8 | Int(byte) }
                index += count
            }
            guard length >= 0, index + length <= bytes.endIndex else { throw .malformed("DER value runs past its container") }
            nodes.append(Node(tag: tag, contents: bytes[index..<index + length], encoded: bytes[start..<index + length]))
            index += length
        }
        return nodes
    }

    // MARK: Writing

    static func tlv(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        var output = [tag]
        let count = contents.count
        if count < 0x80 {
            output.append(UInt8(count))
        } else {
            var lengthBytes: [UInt8] = []
            var remaining = count
            while remaining > 0 {
                lengthBytes.insert(UInt8(remaining & 0xFF), at: 0)
                remaining >>= 8
            }
            output.append(0x80 | UInt8(lengthBytes.count))
            output += lengthBytes
        }
        return output + contents
    }

    static func sequence(_ parts: [UInt8]...) -> [UInt8] { tlv(0x30, parts.flatMap { $0 }) }
    static func set(_ parts: [UInt8]...) -> [UInt8] { tlv(0x31, parts.flatMap { $0 }) }
    static let null: [UInt8] = [0x05, 0x00]

    /// A non-negative INTEGER from big-endian magnitude bytes.
    static func integer(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop { $0 == 0 })
        if bytes.isEmpty { bytes = [0] }
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return tlv(0x02, bytes)
    }

    static func objectIdentifier(_ arcs: [UInt]) -> [UInt8] {
        var body: [UInt8] = [UInt8(arcs[0] * 40 + arcs[1])]
        for arc in arcs.dropFirst(2) {
            var chunk: [UInt8] = [UInt8(arc & 0x7F)]
            var rest = arc >> 7
            while rest > 0 {
                chunk.insert(UInt8(rest & 0x7F) | 0x80, at: 0)
                rest >>= 7
            }
            body += chunk
        }
        return tlv(0x06, body)
    }

    static func utf8String(_ text: String) -> [UInt8] { tlv(0x0C, Array(text.utf8)) }
    static func bitString(_ bytes: [UInt8]) -> [UInt8] { tlv(0x03, [0] + bytes) }
    static func explicit(_ number: UInt8, _ contents: [UInt8]) -> [UInt8] { tlv(0xA0 | number, contents) }

    /// UTCTime (`YYMMDDHHMMSSZ`) for years up to 2049, GeneralizedTime after, as RFC 5280 asks.
    static func time(_ date: Date) -> [UInt8] {
        let text = GraphDate.secondsFormat(date)  // 2026-01-02T03:04:05Z
        let digits = text.filter(\.isNumber)  // 20260102030405
        if let year = Int(digits.prefix(4)), year < 2050 {
            return tlv(0x17, Array((digits.dropFirst(2) + "Z").utf8))
        }
        return tlv(0x18, Array((digits + "Z").utf8))
    }

    // MARK: PEM

    /// The DER bytes of the first PEM block labelled `label` (e.g. `CERTIFICATE`).
    static func pemBlock(_ pem: String, label: String) throws(CertificateError) -> [UInt8] {
        let begin = "-----BEGIN \(label)-----"
        let end = "-----END \(label)-----"
        guard let beginRange = pem.range(of: begin), let endRange = pem.range(of: end, range: beginRange.upperBound..<pem.endIndex) else {
            throw .malformed("no \(label) block in the PEM text")
        }
        let body = pem[beginRange.upperBound..<endRange.lowerBound].filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: String(body)) else { throw .malformed("the \(label) block is not base64") }
        return Array(data)
    }

    static func pem(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines: [String] = ["-----BEGIN \(label)-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let next = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<next]))
            index = next
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A certificate or key the simulator could not read.
public struct CertificateError: Error, Sendable, CustomStringConvertible {
    public var message: String

    static func malformed(_ message: String) -> CertificateError { CertificateError(message: message) }

    public var description: String { "CertificateError: \(message)" }
}
