internal import CCurl
import Synchronization

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Musl)
    internal import Musl
#endif

/// The thread-safe front of the transfer thread: callers post submissions and cancellations to a
/// locked inbox and wake the thread with `curl_multi_wakeup`; the thread (``TransferLoop``) drains it.
///
/// The thread and its multi handle start with the first submission and end on ``stop()`` or
/// ``requestStop()``; after that every submission fails with ``TransportError/shutdown``.
final class TransferEngine: Sendable {
    struct Limits: Sendable {
        var maxHostConnections: Int
        var maxIdleConnections: Int
    }

    private enum Phase {
        case idle
        /// The multi handle is kept here so other threads can wake the loop; it is cleaned up
        /// only after the phase becomes `.stopped`, under the same lock, so a wakeup never hits
        /// a freed handle.
        case running(multi: OpaquePointer)
        case stopping(multi: OpaquePointer)
        case stopped
    }

    private struct Inbox {
        var phase = Phase.idle
        var submissions: [any TransferSubmission] = []
        var cancellations: [TransferID] = []
        var wakeupPending = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []

        /// Wakes the loop unless a wakeup it hasn't consumed is already pending.
        mutating func wakeLoop() {
            guard !wakeupPending else { return }
            switch phase {
            case .running(let multi), .stopping(let multi):
                _ = curl_multi_wakeup(multi)
                wakeupPending = true
            case .idle, .stopped:
                break
            }
        }
    }

    /// What the loop takes from the inbox per turn.
    struct Work {
        var submissions: [any TransferSubmission]
        var cancellations: [TransferID]
        var stopping: Bool
    }

    private let inbox = Mutex(Inbox())
    private let lastID = Atomic<TransferID>(0)
    /// Easy handles the thread has made (the rest of its transfers reused one): for tests.
    let handlesMade = Atomic<Int>(0)
    private let limits: Limits

    init(limits: Limits) {
        self.limits = limits
    }

    func makeID() -> TransferID {
        lastID.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Hands a transfer to the thread, starting the thread first if needed.
    func submit(_ submission: any TransferSubmission) {
        let refusal: TransportError? = inbox.withLock { inbox in
            switch inbox.phase {
            case .idle:
                switch startLoop() {
                case .success(let multi):
                    inbox.phase = .running(multi: multi)
                case .failure(let error):
                    return error
                }
            case .running:
                break
            case .stopping, .stopped:
                return .shutdown
            }
            inbox.submissions.append(submission)
            inbox.wakeLoop()
            return nil
        }
        if let refusal { submission.fail(refusal) }
    }

    /// Asks the thread to drop a transfer whose caller has already been resumed.
    func cancel(_ id: TransferID) {
        inbox.withLock { inbox in
            guard case .running = inbox.phase else { return }
            inbox.cancellations.append(id)
            inbox.wakeLoop()
        }
    }

    /// Starts stopping without waiting: pending and running transfers fail with `.shutdown`.
    func requestStop() {
        inbox.withLock { inbox in
            switch inbox.phase {
            case .idle:
                inbox.phase = .stopped
            case .running(let multi):
                inbox.phase = .stopping(multi: multi)
                inbox.wakeLoop()
            case .stopping, .stopped:
                break
            }
        }
    }

    /// Stops the thread and returns once it has failed every transfer and released libcurl.
    func stop() async {
        requestStop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = inbox.withLock { inbox in
                guard case .stopped = inbox.phase else {
                    inbox.stopWaiters.append(continuation)
                    return false
                }
                return true
            }
            if stopped { continuation.resume() }
        }
    }

    // MARK: Called by the transfer thread

    func takeWork() -> Work {
        inbox.withLock { inbox in
            inbox.wakeupPending = false
            let stopping: Bool
            if case .stopping = inbox.phase { stopping = true } else { stopping = false }
            defer {
                inbox.submissions.removeAll()
                inbox.cancellations.removeAll()
            }
            return Work(submissions: inbox.submissions, cancellations: inbox.cancellations, stopping: stopping)
        }
    }

    /// The loop has removed every transfer: no more wakeups, free the multi handle, release waiters.
    func finishStopping(multi: OpaquePointer) {
        let (leftovers, waiters) = inbox.withLock { inbox in
            inbox.phase = .stopped
            defer {
                inbox.submissions.removeAll()
                inbox.stopWaiters.removeAll()
            }
            return (inbox.submissions, inbox.stopWaiters)
        }
        for submission in leftovers { submission.fail(TransportError.shutdown) }
        curl_multi_cleanup(multi)
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Thread start

    /// Creates the multi handle and its thread; called under the inbox lock.
    private func startLoop() -> Result<OpaquePointer, TransportError> {
        if let failure = CurlGlobal.initialize() { return .failure(failure) }
        guard let multi = curl_multi_init() else {
            return .failure(TransportError(kind: .other, message: "curl_multi_init failed"))
        }
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, limits.maxHostConnections)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, limits.maxIdleConnections)

        let loop = Unmanaged.passRetained(TransferLoop(engine: self, multi: multi))
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { context in
                let loop = Unmanaged<TransferLoop>.fromOpaque(context!).takeRetainedValue()
                loop.run()
                return nil
            }, loop.toOpaque())
        guard status == 0 else {
            loop.release()
            curl_multi_cleanup(multi)
            return .failure(TransportError(kind: .other, message: "could not start the transfer thread (errno \(status))"))
        }
        pthread_detach(thread)
        return .success(multi)
    }
}
