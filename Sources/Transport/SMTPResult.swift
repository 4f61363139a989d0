/// What the server said when it accepted a message.
public struct SMTPResult: Sendable, Hashable {
    /// The final reply code, normally `250`.
    public var replyCode: Int
    /// The server's final reply as it sent it, e.g. `250 2.0.0 Ok: queued as 4Bx1`; often names
    /// the server's queue id. Empty when libcurl passed none on.
    public var reply: String

    public init(replyCode: Int, reply: String) {
        self.replyCode = replyCode
        self.reply = reply
    }
}
