/// Cuts a byte stream into lines without ever holding more than `limit` bytes of one line.
///
/// A line longer than `limit` comes out once as ``Piece/truncated(_:)`` holding its first
/// `limit` bytes; the rest of it, up to its newline, is thrown away. A `\r` before the newline
/// is dropped. Pure value type: the I/O thread feeds it, tests feed it directly.
struct LineSplitter {
    enum Piece: Equatable {
        case line([UInt8])
        case truncated([UInt8])
    }

    let limit: Int
    private var buffer: [UInt8] = []
    /// Inside an overlong line that was already reported: dropping bytes until its newline.
    private var discarding = false

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Bytes currently held for an unfinished line (never more than `limit`).
    var bufferedCount: Int { buffer.count }

    mutating func feed(_ chunk: some Collection<UInt8>, _ emit: (Piece) -> Void) {
        var rest = chunk[...]
        while !rest.isEmpty {
            let newline = rest.firstIndex(of: 0x0A)
            let segment = rest[..<(newline ?? rest.endIndex)]
            if discarding {
                if newline != nil { discarding = false }
            } else if buffer.count + segment.count > limit {
                buffer.append(contentsOf: segment.prefix(limit - buffer.count))
                emit(.truncated(buffer))
                buffer.removeAll(keepingCapacity: true)
                discarding = newline == nil
            } else {
                buffer.append(contentsOf: segment)
                if newline != nil {
                    if buffer.last == 0x0D { buffer.removeLast() }
                    emit(.line(buffer))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            guard let newline else { break }
            rest = rest[rest.index(after: newline)...]
        }
    }

    /// The end of the stream: an unfinished last line still counts as a line.
    mutating func finish(_ emit: (Piece) -> Void) {
        if !buffer.isEmpty, !discarding {
            if buffer.last == 0x0D { buffer.removeLast() }
            emit(.line(buffer))
        }
        buffer = []
        discarding = false
    }
}
