/// Collects the SMTP server's replies from libcurl's header callback: one line per call,
/// `250-...` continuing a multi-line reply and `250 ...` ending it.
struct SMTPReplies {
    /// Complete replies, oldest first, the last ``keep`` of them; each with its lines joined by
    /// " / ", control characters dropped, at most ``maxLength`` characters.
    private(set) var replies: [(code: Int, text: String)] = []
    private var pending: [String] = []
    static let keep = 8
    static let maxLength = 512

    /// The latest reply with `code`: the one that decided the outcome. (libcurl ends every
    /// session with QUIT, so the very last reply is usually `221`.)
    func latest(code: Int) -> String? {
        replies.last { $0.code == code }?.text
    }

    mutating func consume(line bytes: UnsafeRawBufferPointer) {
        consume(line: String(decoding: bytes, as: UTF8.self))
    }

    mutating func consume(line raw: String) {
        let line = String(String.UnicodeScalarView(raw.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
        let scalars = Array(line.unicodeScalars)
        guard scalars.count >= 3, scalars[0..<3].allSatisfy({ ("0"..."9").contains($0) }), let code = Int(String(line.prefix(3)))
        else { return }
        if pending.count < 32 { pending.append(line) }
        guard scalars.count == 3 || scalars[3] != "-" else { return }
        let joined = pending.joined(separator: " / ")
        pending.removeAll(keepingCapacity: true)
        replies.append((code, joined.count > Self.maxLength ? String(joined.prefix(Self.maxLength)) + "…" : joined))
        if replies.count > Self.keep { replies.removeFirst() }
    }
}
