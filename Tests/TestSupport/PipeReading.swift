public import Foundation
import Glibc

extension FileHandle {
    /// Reads this handle on a thread of its own until end of file, handing each chunk to `consume`
    /// and, at the end, one empty chunk. The handle stays open until then.
    ///
    /// Not Foundation's `readabilityHandler`: on Linux its Dispatch read source keeps firing once
    /// the writer has gone (end of file is always readable) until someone clears the handler, and
    /// a pipe closed while its source was still registered crashed the test process in
    /// libdispatch's event loop (`_dispatch_event_loop_drain`, docs/testing.md). A blocking `read`
    /// on a thread that ends at end of file has neither problem.
    public func readToEnd(onOwnThread consume: @escaping @Sendable (Data) -> Void) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                consume(Data(buffer[..<count]))
            }
            consume(Data())
        }
        thread.start()
    }

    /// Reads this handle on a thread of its own up to its first newline and returns the text before
    /// it (the `PORT <n>` line the loopback servers print); nil at end of file before a newline.
    /// What follows the line is left unread.
    public func firstLine() async -> String? {
        await onOwnThread { [self] in
            var line = Data()
            var byte: UInt8 = 0
            while true {
                let count = Glibc.read(fileDescriptor, &byte, 1)
                if count < 0 && errno == EINTR { continue }
                guard count == 1 else { return nil }
                if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            }
        }
    }
}
