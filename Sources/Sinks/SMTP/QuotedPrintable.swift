/// Quoted-printable (RFC 2045 section 6.7) for text bodies in UTF-8.
enum QuotedPrintable {
    /// The longest encoded line, soft-break `=` included.
    static let maxLineLength = 76

    /// Encodes `text` as UTF-8 quoted-printable. Its line breaks (CRLF, LF or CR) become CRLF
    /// hard breaks; longer lines get soft breaks (`=` CRLF) so no line exceeds 76 characters.
    /// Spaces and tabs before a line end, `=` and every byte outside printable ASCII are
    /// `=XX`; a `.` that would start a line is `=2E`, so no line of the body ever starts with a
    /// dot (SMTP transparency holds even before libcurl's dot-stuffing).
    ///
    /// With `endsWithSoftBreak`, the result ends in `=`, so the line break that must follow the
    /// last line of a message (SMTP ends the data with CRLF.CRLF) decodes to nothing: a
    /// single-part body then decodes to exactly `text`.
    static func encode(_ text: String, endsWithSoftBreak: Bool = false) -> String {
        var lines: [[UInt8]] = [[]]
        var previousWasCR = false
        for byte in text.utf8 {
            switch byte {
            case 0x0D:
                lines.append([])
                previousWasCR = true
                continue
            case 0x0A where previousWasCR:
                break  // the LF of a CRLF: the CR already ended the line
            case 0x0A:
                lines.append([])
            default:
                lines[lines.count - 1].append(byte)
            }
            previousWasCR = false
        }
        var encoded = lines.enumerated().map { index, line in
            encodeLine(line, reserveSoftBreak: endsWithSoftBreak && index == lines.count - 1)
        }
        if endsWithSoftBreak { encoded[encoded.count - 1] += "=" }
        return encoded.joined(separator: "\r\n")
    }

    /// `reserveSoftBreak` leaves room for a final `=` on the last physical line.
    private static func encodeLine(_ bytes: [UInt8], reserveSoftBreak: Bool) -> String {
        var output = ""
        var lineLength = 0
        for (index, byte) in bytes.enumerated() {
            let isLast = index == bytes.count - 1
            var token = token(for: byte, endsLine: isLast && !reserveSoftBreak)
            if lineLength == 0, byte == UInt8(ascii: ".") { token = escaped(byte) }
            // Room for the soft break's "=" unless this is the line's last character.
            let limit = isLast && !reserveSoftBreak ? maxLineLength : maxLineLength - 1
            if lineLength + token.utf8.count > limit {
                output += "=\r\n"
                lineLength = 0
                if byte == UInt8(ascii: ".") { token = escaped(byte) }
            }
            output += token
            lineLength += token.utf8.count
        }
        return output
    }

    private static func token(for byte: UInt8, endsLine: Bool) -> String {
        switch byte {
        case 0x20, 0x09:
            return endsLine ? escaped(byte) : String(UnicodeScalar(byte))
        case 0x21...0x7E where byte != UInt8(ascii: "="):
            return String(UnicodeScalar(byte))
        default:
            return escaped(byte)
        }
    }

    static func escaped(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "=" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
    }
}
