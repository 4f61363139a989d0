import Foundation

/// Reads a child process's output up to the first newline (the `PORT <n>` line the loopback
/// servers print) on a thread of its own, not a thread of the cooperative pool.
func readFirstLine(of handle: FileHandle, from name: String) async throws -> String {
    guard let line = await handle.firstLine() else {
        throw HTTPReceiver.StartError(description: "\(name) exited before printing its port")
    }
    return line
}
