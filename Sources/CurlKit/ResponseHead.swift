/// Collects the header fields of the last response from libcurl's header callback lines.
///
/// libcurl passes every line of every response head on the connection, `1xx` interim responses
/// included: a status line starts a new head, so only the final response's fields remain.
struct ResponseHead {
    private(set) var headers: [(name: String, value: String)] = []

    mutating func consume(line bytes: UnsafeRawBufferPointer) {
        consume(line: String(decoding: bytes, as: UTF8.self))
    }

    mutating func consume(line raw: String) {
        if raw.hasPrefix("HTTP/") {
            headers.removeAll(keepingCapacity: true)
            return
        }
        // obs-fold: a line starting with whitespace continues the previous field's value.
        if let first = raw.first, first == " " || first == "\t", !headers.isEmpty {
            let more = raw.trimmingWhitespace()
            if !more.isEmpty {
                let index = headers.count - 1
                headers[index].value = headers[index].value.isEmpty ? more : headers[index].value + " " + more
            }
            return
        }
        guard let colon = raw.firstIndex(of: ":") else { return }  // the blank line ending the head
        let name = String(raw[..<colon]).trimmingWhitespace()
        guard !name.isEmpty else { return }
        headers.append((name: name, value: String(raw[raw.index(after: colon)...]).trimmingWhitespace()))
    }
}
