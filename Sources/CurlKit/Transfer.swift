internal import CCurl

/// What a caller hands to the transfer thread: a Sendable description of one transfer.
///
/// Each kind of transfer has one submission type and one ``CurlTransfer`` type; the thread
/// (``TransferLoop``) knows only these two protocols. HTTP is ``HTTPSubmission``/``HTTPTransfer``;
/// an SMTP send is ``SMTPSubmission``/``SMTPTransfer``.
protocol TransferSubmission: Sendable {
    /// Unique per engine; names the transfer in cancellations.
    var id: TransferID { get }
    /// Whether the caller stopped waiting before the thread picked the submission up.
    var isAbandoned: Bool { get }
    /// On the transfer thread: `easy` (new, or reset after an earlier transfer) configured, and
    /// the state its callbacks fill.
    func makeTransfer(on easy: EasyHandle) throws(TransportError) -> any CurlTransfer
    /// Resumes the caller with `error` if it still waits (refused or never started).
    func fail(_ error: any Error)
}

/// One running transfer; created, driven and dropped on the transfer thread only.
protocol CurlTransfer: AnyObject {
    var easy: EasyHandle { get }
    /// libcurl is done with the transfer (`CURLE_OK` or why not); the handle is already out of
    /// the multi handle, so `getinfo` still works. Resume the caller.
    func finish(_ code: CURLcode)
    /// The transfer was removed before libcurl finished it (cancellation, shutdown).
    func fail(_ error: any Error)
}

typealias TransferID = UInt64
