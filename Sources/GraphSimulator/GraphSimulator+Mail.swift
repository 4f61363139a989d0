import Foundation
import Synchronization

/// Mailboxes: the Swift API that changes them (and notifies), and `GET .../messages/{id}`.
extension GraphSimulator {
    static let wellKnownFolders = ["inbox", "drafts", "sentitems", "deleteditems", "junkemail", "archive", "outbox"]

    /// Message properties `$select` accepts (lowercased) and their spelling on the wire.
    static let messageProperties: [String] = [
        "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime", "sentDateTime", "hasAttachments",
        "internetMessageId", "subject", "bodyPreview", "importance", "parentFolderId", "conversationId", "isDeliveryReceiptRequested",
        "isReadReceiptRequested", "isRead", "isDraft", "webLink", "inferenceClassification", "body", "sender", "from", "toRecipients",
        "ccRecipients", "bccRecipients", "replyTo", "flag",
    ]

    /// A folder's id in a mailbox (stable, opaque-looking).
    func folderID(userID: String, folder: String) -> String {
        "AQMkA" + Base64URL.encode(Array("\(userID.lowercased())/\(folder.lowercased())".utf8))
    }

    // MARK: Swift API

    /// Puts a new message in `mailbox` (UPN or id), in `folder` (a well-known name, default Inbox),
    /// and queues a `created` notification to every matching subscription.
    ///
    /// - Throws: ``SimulatorError`` for an unknown mailbox or folder.
    @discardableResult
    public func createMessage(_ content: MessageContent, in mailbox: String, folder: String = "inbox") throws -> MessageChange {
        guard let user = user(matching: mailbox) else { throw SimulatorError(message: "no mailbox '\(mailbox)' in the simulated tenant") }
        let folderName = folder.lowercased()
        guard Self.wellKnownFolders.contains(folderName) else {
            throw SimulatorError(message: "unknown folder '\(folder)'; use one of \(Self.wellKnownFolders.joined(separator: ", "))")
        }
        let now = Date()
        let id = Identifiers.exchangeItemID()
        let message = SimulatedMessage(
            id: id,
            userID: user.id,
            folder: folderName,
            content: content,
            changeKey: Identifiers.changeKey(),
            createdDateTime: now,
            lastModifiedDateTime: now,
            receivedDateTime: content.receivedDateTime ?? now,
            conversationID: "AAQkAG" + Identifiers.random(bytes: 24) + "=",
            internetMessageID: "<\(Identifiers.random(bytes: 12))@contoso.com>",
            webLink: "https://outlook.office365.com/owa/?ItemID=\(FormEncoding.escape(id))&exvsurl=1&viewmodel=ReadMessageItem"
        )
        state.withLock { $0.messages[id] = message }
        return MessageChange(message: message, changeType: .created, notifiedSubscriptionIDs: notify(message, change: .created))
    }

    /// Changes a message's content (new change key) and queues `updated` notifications.
    ///
    /// - Throws: ``SimulatorError`` when no message has that id.
    @discardableResult
    public func updateMessage(id: String, _ update: (inout MessageContent) -> Void) throws -> MessageChange {
        guard var message = state.withLock({ $0.messages[id] }) else { throw SimulatorError(message: "no message '\(id)'") }
        update(&message.content)
        message.changeKey = Identifiers.changeKey()
        message.lastModifiedDateTime = Date()
        let updated = message
        state.withLock { $0.messages[id] = updated }
        return MessageChange(message: updated, changeType: .updated, notifiedSubscriptionIDs: notify(updated, change: .updated))
    }

    /// Deletes a message (GET answers `ErrorItemNotFound` afterwards) and queues `deleted` notifications.
    ///
    /// - Throws: ``SimulatorError`` when no message has that id.
    @discardableResult
    public func deleteMessage(id: String) throws -> MessageChange {
        guard let message = state.withLock({ $0.messages.removeValue(forKey: id) }) else { throw SimulatorError(message: "no message '\(id)'") }
        return MessageChange(message: message, changeType: .deleted, notifiedSubscriptionIDs: notify(message, change: .deleted))
    }

    /// Whether `subscription` wants to hear about `change` to `message` (rules in the file header).
    func subscription(_ subscription: SimulatedSubscription, matches message: SimulatedMessage, change: ChangeType) -> Bool {
        guard subscription.changeTypes.contains(change), let collection = ResourcePath(subscription.resource).messageCollection else { return false }
        let ownerID: String?
        switch collection.target {
        case .me: ownerID = subscription.creatorID
        case .user(let idOrUPN): ownerID = user(matching: idOrUPN)?.id
        }
        guard ownerID == message.userID else { return false }
        guard let folder = collection.folder else { return true }
        return folder == message.folder || folder == folderID(userID: message.userID, folder: message.folder).lowercased()
    }

    // MARK: GET message

    func getMessage(_ resource: ResourcePath, request: IncomingRequest, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard let (target, rest) = resource.mailbox, let messageID = request.segments.last else {
            return exchange.error(400, code: "BadRequest", message: "Resource not found for the segment 'messages'.")
        }
        let user: SimulatedUser
        switch mailboxOwner(target, caller: caller, exchange: exchange) {
        case .success(let found): user = found
        case .failure(let refusal): return refusal.response
        }
        let parts = Array(rest)
        var folder: String?
        if parts.count == 4, parts[0] == "mailfolders", parts[2] == "messages" {
            folder = parts[1]
        } else if !(parts.count == 2 && parts[0] == "messages") {
            return exchange.error(400, code: "BadRequest", message: "Resource not found for the segment '\(parts.first ?? "")'.")
        }
        let selected = request.queryValue("$select").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let selected {
            let known = Set(Self.messageProperties.map { $0.lowercased() } + ["id"])
            if let unknown = selected.first(where: { !known.contains($0.lowercased()) }) {
                return exchange.error(
                    400, code: "RequestBroker--ParseUri",
                    message: "Could not find a property named '\(unknown)' on type 'Microsoft.OutlookServices.Message'.")
            }
        }
        let message = state.withLock { $0.messages[messageID] }
        guard let message, message.userID == user.id,
            folder == nil || folder == message.folder || folder == folderID(userID: user.id, folder: message.folder).lowercased()
        else {
            return exchange.error(404, code: "ErrorItemNotFound", message: "The specified object was not found in the store.")
        }
        let selection = selected.map { names in names.map { $0.lowercased() } }
        let context: String
        if let selected {
            context = "\(graphBaseURL)/$metadata#users('\(user.id)')/messages(\(selected.joined(separator: ",")))/$entity"
        } else {
            context = "\(graphBaseURL)/$metadata#users('\(user.id)')/messages/$entity"
        }
        let body = messageJSON(message, selecting: selection)
        guard case .object(let members) = body else { return exchange.json(200, body) }
        return exchange.json(200, .object([JSONValue.Member("@odata.context", .string(context))] + members))
    }

    /// The message resource: `@odata.etag`, `id` and the selected properties (all when `selecting` is nil).
    func messageJSON(_ message: SimulatedMessage, selecting: [String]?) -> JSONValue {
        let content = message.content
        func recipient(_ address: EmailAddress) -> JSONValue {
            .object(["emailAddress": .object(["name": .string(address.name), "address": .string(address.address)])])
        }
        let preview = content.bodyPreview ?? String(content.body.prefix(255))
        let all: [(String, JSONValue)] = [
            ("createdDateTime", .string(GraphDate.secondsFormat(message.createdDateTime))),
            ("lastModifiedDateTime", .string(GraphDate.secondsFormat(message.lastModifiedDateTime))),
            ("changeKey", .string(message.changeKey)),
            ("categories", .array(content.categories.map(JSONValue.string))),
            ("receivedDateTime", .string(GraphDate.secondsFormat(message.receivedDateTime))),
            ("sentDateTime", .string(GraphDate.secondsFormat(message.receivedDateTime.addingTimeInterval(-2)))),
            ("hasAttachments", .bool(content.hasAttachments)),
            ("internetMessageId", .string(message.internetMessageID)),
            ("subject", .string(content.subject)),
            ("bodyPreview", .string(preview)),
            ("importance", .string(content.importance.rawValue)),
            ("parentFolderId", .string(folderID(userID: message.userID, folder: message.folder))),
            ("conversationId", .string(message.conversationID)),
            ("isDeliveryReceiptRequested", .bool(false)),
            ("isReadReceiptRequested", .bool(false)),
            ("isRead", .bool(content.isRead)),
            ("isDraft", .bool(message.folder == "drafts")),
            ("webLink", .string(message.webLink)),
            ("inferenceClassification", "focused"),
            ("body", .object(["contentType": .string(content.bodyContentType), "content": .string(content.body)])),
            ("sender", content.from.map(recipient) ?? .null),
            ("from", content.from.map(recipient) ?? .null),
            ("toRecipients", .array(content.toRecipients.map(recipient))),
            ("ccRecipients", .array(content.ccRecipients.map(recipient))),
            ("bccRecipients", .array([])),
            ("replyTo", .array([])),
            ("flag", .object(["flagStatus": "notFlagged"])),
        ]
        var members: [JSONValue.Member] = [.init("@odata.etag", .string(message.etag)), .init("id", .string(message.id))]
        for (name, value) in all where selecting == nil || selecting!.contains(name.lowercased()) {
            members.append(.init(name, value))
        }
        return .object(members)
    }
}
