/// Header fields for RFC 5322 messages: RFC 2047 encoded-words for text that isn't plain ASCII,
/// and folding so that no line is longer than 78 characters.
enum HeaderEncoding {
    /// RFC 5322's recommended line limit, CRLF excluded.
    static let maxLineLength = 78
    /// RFC 2047's limit for one encoded-word.
    static let maxEncodedWordLength = 75
    private static let prefix = "=?UTF-8?Q?"
    private static let suffix = "?="

    /// `Name: value` folded into lines joined by CRLF (without a final CRLF). `pieces` are the
    /// value's parts that must stay whole; a space goes between two pieces, and a line is
    /// folded only at such a space.
    /// With `foldEarly`, even the first piece goes on a line of its own when it doesn't fit
    /// after the name (for structured fields such as `Message-ID`, where white space may
    /// precede the value).
    static func field(_ name: String, pieces: [String], foldEarly: Bool = false) -> String {
        var lines: [String] = []
        var line = "\(name):"
        var lineHasPiece = false
        for piece in pieces {
            if lineHasPiece || foldEarly, line.utf8.count + 1 + piece.utf8.count > maxLineLength {
                lines.append(line)
                line = ""
            }
            line += " " + piece
            lineHasPiece = true
        }
        lines.append(line)
        return lines.joined(separator: "\r\n")
    }

    /// An unstructured value (`Subject`): as it is when it is printable ASCII that folds into
    /// lines of at most 78 characters and can't be mistaken for encoded-words; otherwise as
    /// UTF-8 Q encoded-words. Control characters become spaces first (a header value is one line).
    static func unstructured(_ name: String, _ value: String) -> String {
        let value = headerSafe(value)
        if isPlain(value) {
            let plain = field(name, pieces: value.split(separator: " ", omittingEmptySubsequences: false).map(String.init))
            if plain.split(separator: "\r\n").allSatisfy({ $0.utf8.count <= maxLineLength }) { return plain }
        }
        guard !value.isEmpty else { return "\(name):" }
        return field(name, pieces: encodedWords(value, firstBudget: maxLineLength - name.utf8.count - 2))
    }

    /// A `From`/`To`/`Cc` value: mailboxes separated by commas, display names as atoms, a
    /// quoted string, or encoded-words, folded between words and after commas.
    static func addressList(_ name: String, _ mailboxes: [Mailbox]) -> String {
        var pieces: [String] = []
        for (index, mailbox) in mailboxes.enumerated() {
            var mailboxPieces: [String]
            if let displayName = mailbox.displayName.map(headerSafe), !displayName.isEmpty {
                let firstBudget = pieces.isEmpty ? maxLineLength - name.utf8.count - 2 : maxEncodedWordLength
                mailboxPieces = phrase(displayName, firstBudget: firstBudget) + ["<\(mailbox.address)>"]
            } else {
                mailboxPieces = [mailbox.address]
            }
            if index < mailboxes.count - 1 { mailboxPieces[mailboxPieces.count - 1] += "," }
            pieces += mailboxPieces
        }
        return field(name, pieces: pieces)
    }

    /// A display name as RFC 5322 `phrase` pieces.
    static func phrase(_ text: String, firstBudget: Int) -> [String] {
        if isPlain(text) {
            let words = text.split(separator: " ", omittingEmptySubsequences: false)
            if words.allSatisfy({ !$0.isEmpty && $0.allSatisfy(isAtomCharacter) }) {
                return words.map(String.init)
            }
            var quoted = "\""
            for character in text {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            quoted.append("\"")
            if quoted.utf8.count <= maxEncodedWordLength { return [quoted] }
        }
        return encodedWords(text, firstBudget: firstBudget)
    }

    /// UTF-8 Q encoded-words for `text`, each at most 75 characters (the first at most
    /// `firstBudget`), each holding whole characters. Only letters, digits and `!*+-/` stay as
    /// they are, so the words are valid in a `phrase` as well as in unstructured text; a space
    /// is `_`. Decoders join adjacent encoded-words without the space between them.
    static func encodedWords(_ text: String, firstBudget: Int) -> [String] {
        let overhead = prefix.utf8.count + suffix.utf8.count
        var words: [String] = []
        var payload = ""
        var budget = min(maxEncodedWordLength, max(firstBudget, overhead + 12)) - overhead

        func flush() {
            guard !payload.isEmpty else { return }
            words.append(prefix + payload + suffix)
            payload = ""
            budget = maxEncodedWordLength - overhead
        }
        func append(_ encoded: String) {
            if payload.utf8.count + encoded.utf8.count > budget { flush() }
            payload += encoded
        }

        for character in text {
            let encoded = qEncode(character.utf8)
            if encoded.utf8.count <= maxEncodedWordLength - overhead {
                append(encoded)
            } else {
                // A character too long for one word (a long emoji sequence): split it by scalar.
                for scalar in character.unicodeScalars { append(qEncode(String(scalar).utf8)) }
            }
        }
        flush()
        return words
    }

    private static func qEncode(_ bytes: some Sequence<UInt8>) -> String {
        var output = ""
        for byte in bytes {
            switch byte {
            case UInt8(ascii: " "):
                output += "_"
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "!"), UInt8(ascii: "*"), UInt8(ascii: "+"),
                UInt8(ascii: "-"), UInt8(ascii: "/"):
                output += String(UnicodeScalar(byte))
            default:
                output += QuotedPrintable.escaped(byte)
            }
        }
        return output
    }

    /// Printable ASCII with single spaces only between words, and nothing a decoder could take
    /// for an encoded-word.
    private static func isPlain(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (0x20...0x7E).contains($0) } && !text.hasPrefix(" ") && !text.hasSuffix(" ")
            && !text.contains("  ") && !text.contains("=?")
    }

    /// RFC 5322 `atext`.
    private static func isAtomCharacter(_ character: Character) -> Bool {
        guard character.isASCII else { return false }
        return character.isLetter || character.isNumber || "!#$%&'*+-/=?^_`{|}~".contains(character)
    }

    /// One line: CR LF pairs, other line breaks, tabs and control characters become single spaces.
    static func headerSafe(_ text: String) -> String {
        var output = String.UnicodeScalarView()
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            defer { previousWasCR = scalar == "\r" }
            if scalar == "\n", previousWasCR { continue }
            let isControl = scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
            output.append(isControl ? " " : scalar)
        }
        return String(output)
    }
}
