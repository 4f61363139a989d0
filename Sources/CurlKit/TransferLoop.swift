internal import CCurl
import Synchronization

/// The transfer thread: drives one multi handle until the engine stops.
///
/// Everything here runs on that one thread; blocking libcurl calls never reach the cooperative pool.
final class TransferLoop {
    /// Upper bound for one `curl_multi_poll`; libcurl shortens it to its own next timer and
    /// `curl_multi_wakeup` interrupts it.
    private static let pollMilliseconds: Int32 = 10_000

    private let engine: TransferEngine
    private let multi: OpaquePointer
    private var transfers: [TransferID: any CurlTransfer] = [:]
    /// Easy handles of finished transfers, reset, for the next ones, instead of a
    /// `curl_easy_init` and a `curl_easy_cleanup` per request (with 4 requests in flight, libcurl's
    /// and libc's share of `bench-curl`'s samples fell from 28 % to 26 %).
    private var spareHandles: [EasyHandle] = []
    /// The most spare handles kept (more than the transfers usually in flight at once).
    static let maxSpareHandles = 16

    init(engine: TransferEngine, multi: OpaquePointer) {
        self.engine = engine
        self.multi = multi
    }

    func run() {
        // Named for `top -H`, `perf` and `gdb` (it would otherwise carry its creator's name).
        ccurl_name_this_thread("bridge-curl")
        while true {
            let work = engine.takeWork()
            if work.stopping {
                for submission in work.submissions { submission.fail(TransportError.shutdown) }
                break
            }
            for submission in work.submissions { start(submission) }
            for id in work.cancellations { remove(id, failing: CancellationError()) }

            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            collectFinished()
            _ = curl_multi_poll(multi, nil, 0, Self.pollMilliseconds, nil)
        }
        for id in Array(transfers.keys) { remove(id, failing: TransportError.shutdown) }
        engine.finishStopping(multi: multi)
    }

    private func start(_ submission: any TransferSubmission) {
        guard !submission.isAbandoned else { return }
        do {
            let transfer = try submission.makeTransfer(on: spareHandles.popLast() ?? makeHandle())
            try transfer.easy.set(CURLOPT_PRIVATE, pointer: UnsafeMutableRawPointer(bitPattern: UInt(submission.id)))
            let code = curl_multi_add_handle(multi, transfer.easy.raw)
            guard code == CURLM_OK else {
                let text = String(cString: curl_multi_strerror(code))
                throw TransportError(kind: .other, message: "curl_multi_add_handle: \(text)")
            }
            transfers[submission.id] = transfer
        } catch {
            submission.fail(error)
        }
    }

    private func remove(_ id: TransferID, failing error: any Error) {
        guard let transfer = transfers.removeValue(forKey: id) else { return }
        _ = curl_multi_remove_handle(multi, transfer.easy.raw)
        transfer.fail(error)
        keep(transfer.easy)
    }

    private func makeHandle() throws(TransportError) -> EasyHandle {
        let easy = try EasyHandle()
        engine.handlesMade.add(1, ordering: .relaxed)
        return easy
    }

    /// Resets a finished transfer's handle and keeps it for the next, up to ``maxSpareHandles``.
    private func keep(_ easy: EasyHandle) {
        guard spareHandles.count < Self.maxSpareHandles, easy.reset() else { return }
        spareHandles.append(easy)
    }

    private func collectFinished() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            // The message dies with remove_handle: read it first.
            let code = message.pointee.data.result
            var context: UnsafeMutableRawPointer?
            _ = ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
            _ = curl_multi_remove_handle(multi, easy)
            let id = TransferID(UInt(bitPattern: context))
            guard let transfer = transfers.removeValue(forKey: id) else { continue }
            transfer.finish(code)  // reads the handle's status and error first
            keep(transfer.easy)
        }
    }
}
