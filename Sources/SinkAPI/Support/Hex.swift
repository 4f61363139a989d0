/// Lowercase hexadecimal digits as UTF-8 bytes, for writers that spell bytes out.
enum Hex {
    static let lowercase: [UInt8] = Array("0123456789abcdef".utf8)
}
