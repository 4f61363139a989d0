public import Foundation

/// Event ids: UUIDv7 (RFC 9562) in lowercase text, so they sort by arrival time and stay unique
/// across restarts and replicas.
public enum EventID {
    public static func make(at date: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(at: date, using: &generator)
    }

    public static func make(at date: Date, using generator: inout some RandomNumberGenerator) -> String {
        let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - i))) }
        let random1 = generator.next() as UInt64
        let random2 = generator.next() as UInt64
        for i in 6..<16 {
            let source = i < 11 ? random1 : random2
            bytes[i] = UInt8(truncatingIfNeeded: source >> (8 * (i % 8)))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return text(bytes)
    }

    /// The UUID's lowercase text (`UUID.uuidString.lowercased()`, without Foundation's formatting
    /// and a case mapping for every event).
    static func text(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(Hex.lowercase[Int(byte >> 4)])
            text.append(Hex.lowercase[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
