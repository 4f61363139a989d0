import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One bridge process as the state store knows it: a random name per start, so a restarted
/// process is a new replica and never mistakes the claims of its previous life for its own.
public struct ReplicaID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A new identity: the host's name (for operators reading the store) and 12 random hex digits.
    public static func random() -> ReplicaID {
        var name = [CChar](repeating: 0, count: 256)
        let bytes = gethostname(&name, 255) == 0 ? name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) } : []
        let host = String(decoding: bytes, as: UTF8.self).split(separator: ".").first.map(String.init) ?? "bridge"
        let suffix = (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        return ReplicaID("\(host.prefix(40))-\(suffix)")
    }

    public var description: String { rawValue }
}
