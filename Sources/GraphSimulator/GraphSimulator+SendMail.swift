import Foundation
import Logging

/// `POST /v1.0/users/{id|upn}/sendMail` and `/v1.0/me/sendMail`: a mail on demand, as Graph has it.
///
/// What is faithful: the request body (`{"message": {...}, "saveToSentItems": ...}`), `202` with an
/// empty body, the bearer token like every Graph call, a delegated token reaching only its own
/// mailbox, the mail landing in the Inbox of every recipient (`to`, `cc`, `bcc`) that is a mailbox
/// of the simulated tenant (each lands once, and fires the subscriptions' `created` notifications),
/// a copy in the sender's Sent Items unless `saveToSentItems` is false, and Graph's error codes for a
/// body it cannot read (`BadRequest`, `RequestBodyRead`) or a mail without valid recipients
/// (`ErrorInvalidRecipients`, with Graph's message texts).
///
/// What is simplified: other recipients are taken as external and dropped silently (Graph would
/// deliver them over the internet); `from` is always the sending mailbox (no send-as); attachments and
/// other message properties are accepted and ignored; the text for a missing `message` is
/// best-effort (Graph's is not documented).
extension GraphSimulator {
    /// Sends `content` from `mailbox` (UPN or id): a copy in the Inbox of each recipient the tenant
    /// has (`toRecipients`, `ccRecipients` and `bccRecipients`, each mailbox once) and, when
    /// `saveToSentItems`, one in the sender's Sent Items; every copy queues `created` notifications.
    /// `content.from` is replaced by the sender. Returns the copies, Inbox ones first.
    ///
    /// - Throws: ``SimulatorError`` for an unknown sending mailbox.
    @discardableResult
    public func sendMail(
        _ content: MessageContent, from mailbox: String, bccRecipients: [EmailAddress] = [], saveToSentItems: Bool = true
    ) throws -> [MessageChange] {
        guard let sender = user(matching: mailbox) else { throw SimulatorError(message: "no mailbox '\(mailbox)' in the simulated tenant") }
        var content = content
        content.from = EmailAddress(name: sender.displayName, address: sender.userPrincipalName)
        var seen: Set<String> = []
        var recipients: [SimulatedUser] = []
        for address in content.toRecipients + content.ccRecipients + bccRecipients {
            guard address.address.contains("@"), let user = user(matching: address.address), seen.insert(user.id).inserted else { continue }
            recipients.append(user)
        }
        let external = (content.toRecipients + content.ccRecipients + bccRecipients).filter { user(matching: $0.address) == nil }
        var changes: [MessageChange] = []
        for recipient in recipients {
            changes.append(try createMessage(content, in: recipient.id))
        }
        if saveToSentItems {
            var sent = content
            sent.isRead = true
            changes.append(try createMessage(sent, in: sender.id, folder: "sentitems"))
        }
        logger.info(
            "mail sent",
            metadata: [
                "bridge.from": "\(sender.userPrincipalName)",
                "bridge.delivered_to": "\(recipients.map(\.userPrincipalName).joined(separator: ","))",
                "bridge.external_recipients": "\(external.count)",
            ])
        return changes
    }

    // MARK: HTTP

    func sendMail(_ resource: ResourcePath, request: IncomingRequest, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard let (target, _) = resource.mailbox else {
            return exchange.error(400, code: "BadRequest", message: "Resource not found for the segment 'sendMail'.")
        }
        let sender: SimulatedUser
        switch mailboxOwner(target, caller: caller, exchange: exchange) {
        case .success(let found): sender = found
        case .failure(let refusal): return refusal.response
        }
        switch Self.parseSendMail(request.body) {
        case .failure(let problem):
            return exchange.error(400, code: problem.code, message: problem.message)
        case .success(let parsed):
            do {
                try sendMail(parsed.content, from: sender.id, bccRecipients: parsed.bcc, saveToSentItems: parsed.saveToSentItems)
            } catch {
                return exchange.error(500, code: "ErrorInternalServerError", message: "\(error)")
            }
            return .empty(202)
        }
    }

    /// A `sendMail` body, read.
    struct SendMailRequest {
        var content: MessageContent
        var bcc: [EmailAddress]
        var saveToSentItems: Bool
    }

    /// Why a `sendMail` body was refused: Graph's error code and message.
    struct SendMailProblem: Error, Equatable {
        var code: String
        var message: String

        static func bodyRead(_ message: String) -> SendMailProblem { SendMailProblem(code: "RequestBodyRead", message: message) }
    }

    /// Properties of `message` that `sendMail` accepts (lowercased); the simulator reads subject,
    /// body, recipients and importance and ignores the rest.
    static let sendableMessageProperties: Set<String> = Set(
        (messageProperties + ["id", "attachments", "internetMessageHeaders", "singleValueExtendedProperties", "multiValueExtendedProperties", "extensions", "uniqueBody", "mentions"])
            .map { $0.lowercased() })

    /// Reads a `sendMail` body the way Graph's OData layer does: the errors it gives for what it cannot read.
    static func parseSendMail(_ bytes: [UInt8]) -> Result<SendMailRequest, SendMailProblem> {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return .failure(SendMailProblem(code: "BadRequest", message: "Empty Payload. JSON content expected."))
        }
        guard let body = JSONValue.parse(bytes), case .object(let members) = body else {
            return .failure(
                SendMailProblem(
                    code: "BadRequest",
                    message: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."))
        }
        for member in members where !member.key.contains("@") {
            guard ["message", "savetosentitems"].contains(member.key.lowercased()) else {
                return .failure(.bodyRead("The parameter '\(member.key)' in the request payload is not a valid parameter for the operation 'sendMail'."))
            }
        }
        var saveToSentItems = true
        if let value = body.member(caseInsensitive: "saveToSentItems"), !value.isNull {
            guard let flag = value.boolValue else { return .failure(.bodyRead(literalProblem(value, expected: "Edm.Boolean"))) }
            saveToSentItems = flag
        }
        guard let message = body.member(caseInsensitive: "message"), !message.isNull else {
            return .failure(SendMailProblem(code: "BadRequest", message: "The required parameter 'Message' is missing."))
        }
        guard case .object(let properties) = message else { return .failure(.bodyRead(nodeProblem(message, expected: "StartObject"))) }
        for property in properties where !property.key.contains("@") && !sendableMessageProperties.contains(property.key.lowercased()) {
            return .failure(
                .bodyRead(
                    "The property '\(property.key)' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ))
        }
        func field(_ name: String) -> JSONValue? {
            guard let value = message.member(caseInsensitive: name), !value.isNull else { return nil }
            return value
        }
        func string(_ value: JSONValue?) -> Result<String?, SendMailProblem> {
            guard let value else { return .success(nil) }
            guard let text = value.stringValue else { return .failure(.bodyRead(literalProblem(value, expected: "Edm.String"))) }
            return .success(text)
        }
        do {
            let subject = try string(field("subject")).get() ?? ""
            var bodyText = ""
            var contentType = "text"
            if let bodyValue = field("body") {
                guard case .object = bodyValue else { throw SendMailProblem.bodyRead(nodeProblem(bodyValue, expected: "StartObject")) }
                bodyText = try string(bodyValue.member(caseInsensitive: "content").flatMap { $0.isNull ? nil : $0 }).get() ?? ""
                if let type = try string(bodyValue.member(caseInsensitive: "contentType").flatMap { $0.isNull ? nil : $0 }).get() {
                    guard ["text", "html"].contains(type.lowercased()) else { throw SendMailProblem.bodyRead("Requested value '\(type)' was not found.") }
                    contentType = type.lowercased()
                }
            }
            var importance = MessageContent.Importance.normal
            if let text = try string(field("importance")).get() {
                guard let value = MessageContent.Importance(rawValue: text.lowercased()) else {
                    throw SendMailProblem.bodyRead("Requested value '\(text)' was not found.")
                }
                importance = value
            }
            let to = try recipients(field("toRecipients")).get()
            let cc = try recipients(field("ccRecipients")).get()
            let bcc = try recipients(field("bccRecipients")).get()
            let all = to + cc + bcc
            guard !all.isEmpty else {
                throw SendMailProblem(
                    code: "ErrorInvalidRecipients", message: "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
            }
            if let unresolved = all.first(where: { !isEmailAddress($0.address) }) {
                throw SendMailProblem(
                    code: "ErrorInvalidRecipients",
                    message:
                        "At least one recipient isn't valid., Recipient \"\(unresolved.address)\" isn't resolved. All recipients must be resolved before a message can be submitted."
                )
            }
            let content = MessageContent(
                subject: subject, toRecipients: to, ccRecipients: cc, body: bodyText, bodyContentType: contentType, importance: importance)
            return .success(SendMailRequest(content: content, bcc: bcc, saveToSentItems: saveToSentItems))
        } catch let problem as SendMailProblem {
            return .failure(problem)
        } catch {
            return .failure(.bodyRead("\(error)"))
        }
    }

    /// `[{"emailAddress": {"address": ..., "name": ...}}, ...]`; an entry without an address reads as an empty one.
    static func recipients(_ value: JSONValue?) -> Result<[EmailAddress], SendMailProblem> {
        guard let value else { return .success([]) }
        guard let entries = value.arrayValue else { return .failure(.bodyRead(nodeProblem(value, expected: "StartArray"))) }
        var addresses: [EmailAddress] = []
        for entry in entries {
            guard case .object = entry else { return .failure(.bodyRead(nodeProblem(entry, expected: "StartObject"))) }
            let emailAddress = entry.member(caseInsensitive: "emailAddress")
            if let emailAddress, !emailAddress.isNull {
                guard case .object = emailAddress else { return .failure(.bodyRead(nodeProblem(emailAddress, expected: "StartObject"))) }
            }
            let address = emailAddress?.member(caseInsensitive: "address")
            let name = emailAddress?.member(caseInsensitive: "name")
            for part in [address, name] {
                if let part, !part.isNull, part.stringValue == nil { return .failure(.bodyRead(literalProblem(part, expected: "Edm.String"))) }
            }
            let text = address?.stringValue ?? ""
            addresses.append(EmailAddress(name: name?.stringValue ?? text, address: text))
        }
        return .success(addresses)
    }

    /// Something like `local@domain`: what Exchange can resolve at all.
    static func isEmailAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && !text.contains(where: \.isWhitespace)
    }

    /// OData's text for a JSON value of the wrong kind where an object or array was expected.
    static func nodeProblem(_ value: JSONValue, expected: String) -> String {
        let found: String
        switch value {
        case .array: found = "StartArray"
        case .object: found = "StartObject"
        default: found = "PrimitiveValue"
        }
        return "An unexpected '\(found)' node was found when reading from the JSON reader. A '\(expected)' node was expected."
    }

    /// OData's text for a value that does not convert to a primitive type.
    static func literalProblem(_ value: JSONValue, expected: String) -> String {
        switch value {
        case .array, .object: return nodeProblem(value, expected: "PrimitiveValue")
        case .string(let text): return "Cannot convert the literal '\(text)' to the expected type '\(expected)'."
        default: return "Cannot convert the literal '\(value.serialized())' to the expected type '\(expected)'."
        }
    }
}
