import CurlKit
import Foundation
import Testing

@testable import GraphSimulator

/// `POST /v1.0/users/{id|upn}/sendMail`: one mail on demand, as Graph has it.
@Suite("sendMail")
struct SendMailTests {
    static func recipients(_ addresses: [String]) -> JSONValue {
        .array(addresses.map { .object(["emailAddress": .object(["address": .string($0)])]) })
    }

    static func sendMailBody(
        subject: String = "Build 1742 is green", to: [String] = ["alice@contoso.com"], cc: [String] = [], bcc: [String] = [],
        saveToSentItems: Bool? = nil
    ) -> JSONValue {
        var message: JSONValue = .object([
            "subject": .string(subject),
            "body": .object(["contentType": "Text", "content": "All 412 tests passed."]),
            "toRecipients": recipients(to),
        ])
        if !cc.isEmpty { message = message.setting("ccRecipients", recipients(cc)) }
        if !bcc.isEmpty { message = message.setting("bccRecipients", recipients(bcc)) }
        var body: JSONValue = .object(["message": message])
        if let saveToSentItems { body = body.setting("saveToSentItems", .bool(saveToSentItems)) }
        return body
    }

    @Test("202 with an empty body; the mail lands in each known recipient's Inbox once, fires their subscriptions, and a copy goes to Sent Items")
    func delivered() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let aliceInbox = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created"))
            let bobInbox = try await live.createSubscription(
                token: token, live.subscriptionBody(resource: "users/bob@contoso.com/mailFolders('Inbox')/messages", changeType: "created", path: "/bob"))

            let response = try await live.call(
                "POST", "/users/\(SimulatedUser.bob.id)/sendMail", token: token,
                json: Self.sendMailBody(to: ["Alice@Contoso.com", "partner@fabrikam.example"], cc: ["alice@contoso.com"], bcc: ["bob@contoso.com"]))
            #expect(response.status == 202, "\(response.bodyText)")
            #expect(response.body.isEmpty)
            #expect(response.header("request-id") != nil)

            let toAlice = try await live.subscriber.notifications.first { $0.path == "/notify" }
            #expect(toAlice.items.first?["subscriptionId"]?.stringValue == aliceInbox)
            let toBob = try await live.subscriber.notifications.first { $0.path == "/bob" }
            #expect(toBob.items.first?["subscriptionId"]?.stringValue == bobInbox, "bcc delivers too")

            let messages = live.simulator.messages
            let inAliceInbox = messages.filter { $0.userID == SimulatedUser.alice.id && $0.folder == "inbox" }
            #expect(inAliceInbox.count == 1, "to and cc to the same mailbox deliver once")
            let mail = try #require(inAliceInbox.first)
            #expect(mail.content.subject == "Build 1742 is green")
            #expect(mail.content.body == "All 412 tests passed.")
            #expect(mail.content.bodyContentType == "text")
            #expect(mail.content.from == EmailAddress(name: SimulatedUser.bob.displayName, address: "bob@contoso.com"))
            #expect(mail.content.toRecipients.map(\.address) == ["Alice@Contoso.com", "partner@fabrikam.example"])
            #expect(mail.content.ccRecipients.map(\.address) == ["alice@contoso.com"])
            #expect(messages.filter { $0.userID == SimulatedUser.bob.id && $0.folder == "inbox" }.count == 1)
            let sent = messages.filter { $0.folder == "sentitems" }
            #expect(sent.count == 1 && sent.first?.userID == SimulatedUser.bob.id && sent.first?.content.isRead == true)

            // The notification's resource is the mail a GET returns.
            let resource = try #require(toAlice.items.first?["resource"]?.stringValue)
            let fetched = try await live.call("GET", "/\(resource)?$select=subject,from", token: token)
            #expect(fetched.json?["subject"] == "Build 1742 is green")
            #expect(fetched.json?["from"]?["emailAddress"]?["address"] == "bob@contoso.com")
        }
    }

    @Test("saveToSentItems false keeps no copy; only external recipients is accepted and lands nowhere")
    func noCopyAndExternal() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let quiet = try await live.call(
                "POST", "/users/alice@contoso.com/sendMail", token: token, json: Self.sendMailBody(to: ["bob@contoso.com"], saveToSentItems: false))
            #expect(quiet.status == 202)
            #expect(live.simulator.messages.map(\.folder) == ["inbox"])
            let external = try await live.call(
                "POST", "/users/alice@contoso.com/microsoft.graph.sendMail", token: token, json: Self.sendMailBody(to: ["someone@fabrikam.example"]))
            #expect(external.status == 202, "\(external.bodyText)")
            #expect(live.simulator.messages.map(\.folder).sorted() == ["inbox", "sentitems"])
        }
    }

    @Test("authenticated like every Graph call; unknown sender 404; me/ needs a delegated token; GET is 405")
    func access() async throws {
        try await Harness.withSimulator { live in
            let body = Self.sendMailBody()
            let anonymous = try await live.call("POST", "/users/bob@contoso.com/sendMail", token: nil, json: body)
            #expect(anonymous.status == 401)
            #expect(anonymous.graphErrorCode == "InvalidAuthenticationToken")
            let token = try await live.appToken()
            let unknown = try await live.call("POST", "/users/carol@contoso.com/sendMail", token: token, json: body)
            #expect(unknown.status == 404)
            #expect(unknown.graphErrorCode == "ErrorInvalidUser")
            let me = try await live.call("POST", "/me/sendMail", token: token, json: body)
            #expect(me.status == 400)
            #expect(me.graphErrorMessage == "/me request is only valid with delegated authentication flow.")
            let get = try await live.call("GET", "/users/bob@contoso.com/sendMail", token: token)
            #expect(get.status == 405)
            #expect(live.simulator.messages.isEmpty)
        }
    }

    @Test("a delegated token sends as its own user through me/ and users/{self}, never as another user")
    func delegated() async throws {
        try await Harness.withSimulator({ $0.autoApproveDeviceCodesAs = "alice@contoso.com" }) { live in
            let clientID = live.simulator.configuration.clientID
            let started = try await live.postForm(
                "\(live.simulator.authorityURL)/common/oauth2/v2.0/devicecode", [("client_id", clientID), ("scope", "Mail.Send offline_access")])
            let deviceCode = try #require(started.json?["device_code"]?.stringValue)
            let grant = try await live.postForm(
                "\(live.simulator.authorityURL)/common/oauth2/v2.0/token",
                [("client_id", clientID), ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode)])
            let token = try #require(grant.json?["access_token"]?.stringValue)
            let me = try await live.call("POST", "/me/sendMail", token: token, json: Self.sendMailBody(to: ["bob@contoso.com"], saveToSentItems: false))
            #expect(me.status == 202, "\(me.bodyText)")
            let byName = try await live.call(
                "POST", "/users/alice@contoso.com/sendMail", token: token, json: Self.sendMailBody(to: ["bob@contoso.com"], saveToSentItems: false))
            #expect(byName.status == 202)
            let other = try await live.call("POST", "/users/bob@contoso.com/sendMail", token: token, json: Self.sendMailBody())
            #expect(other.status == 403)
            #expect(other.graphErrorCode == "ErrorAccessDenied")
            let received = live.simulator.messages
            #expect(received.count == 2)
            #expect(received.allSatisfy { $0.userID == SimulatedUser.bob.id && $0.content.from?.address == "alice@contoso.com" })
        }
    }

    @Test("a body Graph cannot read is 400 with Graph's error shape, and nothing is sent")
    func malformed() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let cases: [(body: [UInt8], code: String, message: String)] = [
                (Array("".utf8), "BadRequest", "Empty Payload. JSON content expected."),
                (Array("{\"message\": ".utf8), "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."),
                (Array("[]".utf8), "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."),
                (Array("{}".utf8), "BadRequest", "The required parameter 'Message' is missing."),
                (
                    Array(#"{"subject": "Hi", "toRecipients": []}"#.utf8), "RequestBodyRead",
                    "The parameter 'subject' in the request payload is not a valid parameter for the operation 'sendMail'."
                ),
                (
                    Array(#"{"message": "Hi"}"#.utf8), "RequestBodyRead",
                    "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartObject' node was expected."
                ),
                (Array(#"{"message": {"subject": 7}}"#.utf8), "RequestBodyRead", "Cannot convert the literal '7' to the expected type 'Edm.String'."),
                (
                    Array(#"{"message": {"toRecipients": "alice@contoso.com"}}"#.utf8), "RequestBodyRead",
                    "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartArray' node was expected."
                ),
                (
                    Array(#"{"message": {"subjet": "Hi"}}"#.utf8), "RequestBodyRead",
                    "The property 'subjet' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ),
                (
                    Array(#"{"message": {"body": {"contentType": "markdown", "content": "x"}, "toRecipients": [{"emailAddress": {"address": "alice@contoso.com"}}]}}"#.utf8),
                    "RequestBodyRead", "Requested value 'markdown' was not found."
                ),
                (
                    Array(#"{"message": {"toRecipients": [{"emailAddress": {"address": "alice@contoso.com"}}]}, "saveToSentItems": "yes"}"#.utf8),
                    "RequestBodyRead", "Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'."
                ),
                (
                    Array(#"{"message": {"subject": "Hi"}}"#.utf8), "ErrorInvalidRecipients",
                    "At least one recipient isn't valid., A message can't be sent because it contains no recipients."
                ),
                (
                    Array(#"{"message": {"toRecipients": [{"emailAddress": {"address": "alice"}}]}}"#.utf8), "ErrorInvalidRecipients",
                    "At least one recipient isn't valid., Recipient \"alice\" isn't resolved. All recipients must be resolved before a message can be submitted."
                ),
                (
                    Array(#"{"message": {"toRecipients": [{"emailAddress": {"name": "Alice"}}]}}"#.utf8), "ErrorInvalidRecipients",
                    "At least one recipient isn't valid., Recipient \"\" isn't resolved. All recipients must be resolved before a message can be submitted."
                ),
            ]
            for entry in cases {
                let response = try await live.client.execute(
                    CurlKit.HTTPRequest(
                        method: "POST", url: live.graph + "/users/bob@contoso.com/sendMail",
                        headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: entry.body))
                let text = String(decoding: entry.body, as: UTF8.self)
                #expect(response.status == 400, "\(text)")
                #expect(response.graphErrorCode == entry.code, "\(text): \(response.bodyText)")
                #expect(response.graphErrorMessage == entry.message, "\(text)")
                let inner = response.json?["error"]?["innerError"]
                #expect(inner?["request-id"]?.stringValue == response.header("request-id"), "\(text)")
                #expect(inner?["date"]?.stringValue != nil)
            }
            #expect(live.simulator.messages.isEmpty)
            #expect(live.simulator.deliveries.filter { $0.kind == .changeNotification }.isEmpty)
        }
    }

    @Test("the Swift API: sendMail from a mailbox, and one list of realistic sample mails")
    func swiftAPIAndSamples() async throws {
        try await Harness.withSimulator { live in
            let sample = SampleMails.mail(1, to: [EmailAddress(name: "Bob", address: "bob@contoso.com")])
            let changes = try live.simulator.sendMail(sample, from: "alice@contoso.com", saveToSentItems: false)
            #expect(changes.count == 1)
            #expect(changes.first?.message.userID == SimulatedUser.bob.id)
            #expect(changes.first?.message.content.subject == sample.subject)
            #expect(changes.first?.message.content.from?.address == "alice@contoso.com")
            #expect(throws: SimulatorError.self) { try live.simulator.sendMail(sample, from: "nobody@contoso.com") }
        }
        #expect(SampleMails.all.count >= 6)
        #expect(Set(SampleMails.all.map(\.subject)).count == SampleMails.all.count)
        #expect(SampleMails.all.allSatisfy { !$0.body.isEmpty && $0.from != nil })
        #expect(!SampleMails.all.contains { $0.subject.hasPrefix("Simulated mail") })
        #expect(SampleMails.mail(SampleMails.all.count) == SampleMails.mail(0))
        #expect(SampleMails.mail(-1) == SampleMails.all.last)
    }
}
