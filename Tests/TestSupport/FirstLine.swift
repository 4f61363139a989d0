import Foundation
import Synchronization

/// Reads a child process's output up to the first newline (the `PORT <n>` line the loopback
/// servers print) without blocking a thread of the cooperative pool.
func readFirstLine(of handle: FileHandle, from name: String) async throws -> String {
    let buffer = Mutex<(data: Data, done: Bool)>((Data(), false))
    defer { handle.readabilityHandler = nil }
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
        handle.readabilityHandler = { handle in
            let chunk = handle.availableData
            let result: Result<String, HTTPReceiver.StartError>? = buffer.withLock { buffer in
                guard !buffer.done else { return nil }
                if chunk.isEmpty {
                    buffer.done = true
                    return .failure(HTTPReceiver.StartError(description: "\(name) exited before printing its port"))
                }
                buffer.data.append(chunk)
                guard let newline = buffer.data.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
                buffer.done = true
                return .success(String(decoding: buffer.data[..<newline], as: UTF8.self))
            }
            if let result { continuation.resume(with: result) }
        }
    }
}
