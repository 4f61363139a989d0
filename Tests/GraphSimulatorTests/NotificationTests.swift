import Crypto
import CurlKit
import Foundation
import Testing
import _CryptoExtras

@testable import GraphSimulator

@Suite("mail and notifications")
struct NotificationTests {
    /// The keys of graph-vectors/notification-samples.json `basic_message_created`.
    static let sampleItemKeys: Set<String> = [
        "id", "subscriptionId", "subscriptionExpirationDateTime", "clientState", "changeType", "resource", "tenantId", "resourceData",
    ]
    static let sampleResourceDataKeys: Set<String> = ["@odata.type", "@odata.id", "@odata.etag", "id"]

    @Test("createMessage notifies the matching subscription with the sample's shape and its clientState")
    func createdNotification() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody())
            // Not matching: another folder, another mailbox.
            let archived = try live.simulator.createMessage(MessageContent(subject: "archived"), in: "alice@contoso.com", folder: "archive")
            #expect(archived.notifiedSubscriptionIDs.isEmpty)
            #expect(try live.simulator.createMessage(MessageContent(subject: "bob's"), in: "bob@contoso.com").notifiedSubscriptionIDs.isEmpty)

            let change = try live.simulator.createMessage(
                MessageContent(
                    subject: "Quarterly report", from: EmailAddress(name: "Carol", address: "carol@contoso.com"), body: "Numbers inside",
                    importance: .high),
                in: "alice@contoso.com")
            #expect(change.notifiedSubscriptionIDs == [id])
            let delivery = try await live.subscriber.notifications.first { $0.path == "/notify" }
            #expect(delivery.contentType?.hasPrefix("application/json") == true)
            let item = try #require(delivery.items.first)
            #expect(delivery.items.count == 1)
            #expect(Set(item.keys) == Self.sampleItemKeys)
            #expect(item["subscriptionId"]?.stringValue == id)
            #expect(item["clientState"] == "secretClientValue")
            #expect(item["changeType"] == "created")
            #expect(item["tenantId"]?.stringValue == live.simulator.tenantID)
            let message = change.message
            #expect(item["resource"]?.stringValue == "Users/\(SimulatedUser.alice.id)/Messages/\(message.id)")
            let expiry = try #require(item["subscriptionExpirationDateTime"]?.stringValue.flatMap(GraphDate.parse))
            #expect(abs(expiry.timeIntervalSince(live.simulator.subscription(id: id)!.expirationDateTime)) < 0.001)
            let data = try #require(item["resourceData"])
            #expect(Set(data.keys) == Self.sampleResourceDataKeys)
            #expect(data["@odata.type"] == "#Microsoft.Graph.Message")
            #expect(data["@odata.id"] == item["resource"])
            #expect(data["@odata.etag"]?.stringValue == message.etag)
            #expect(message.etag.hasPrefix("W/\""))
            #expect(data["id"]?.stringValue == message.id)
            #expect(delivery.json?["validationTokens"] == nil)

            // The resource path from the notification works for a GET, with $select honoured.
            let resource = try #require(item["resource"]?.stringValue)
            let fetched = try await live.call("GET", "/\(resource)?$select=subject,from,importance", token: token)
            #expect(fetched.status == 200, "\(fetched.bodyText)")
            let body = try #require(fetched.json)
            #expect(Set(body.keys) == ["@odata.context", "@odata.etag", "id", "subject", "from", "importance"])
            #expect(body["subject"] == "Quarterly report")
            #expect(body["importance"] == "high")
            #expect(body["from"]?["emailAddress"]?["address"] == "carol@contoso.com")
            #expect(body["@odata.etag"]?.stringValue == message.etag)

            let full = try await live.call("GET", "/users/alice@contoso.com/mailFolders('Inbox')/messages/\(message.id)", token: token)
            #expect(full.status == 200)
            #expect(full.json?["bodyPreview"] == "Numbers inside")
            #expect(full.json?["body"]?["content"] == "Numbers inside")
            #expect(full.json?["webLink"]?.stringValue?.hasPrefix("https://outlook.office365.com/owa/") == true)
            let wrongFolder = try await live.call("GET", "/users/alice@contoso.com/mailFolders/archive/messages/\(message.id)", token: token)
            #expect(wrongFolder.status == 404)
            let unknownProperty = try await live.call("GET", "/\(resource)?$select=subject,shoeSize", token: token)
            #expect(unknownProperty.status == 400)
            #expect(unknownProperty.graphErrorMessage == "Could not find a property named 'shoeSize' on type 'Microsoft.OutlookServices.Message'.")
        }
    }

    @Test("update and delete send updated and deleted notifications; a deleted message is ErrorItemNotFound")
    func updateAndDelete() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(
                token: token, live.subscriptionBody(resource: "users/\(SimulatedUser.alice.id)/messages", changeType: "updated,deleted"))
            let created = try live.simulator.createMessage(MessageContent(subject: "draft"), in: "alice@contoso.com")
            #expect(created.notifiedSubscriptionIDs.isEmpty, "the subscription doesn't ask for created")
            let updated = try live.simulator.updateMessage(id: created.message.id) { $0.isRead = true }
            #expect(updated.message.changeKey != created.message.changeKey)
            #expect(updated.notifiedSubscriptionIDs == [id])
            let first = try await live.subscriber.notifications.first { $0.items.first?["changeType"] == "updated" }
            #expect(first.items.first?["resourceData"]?["@odata.etag"]?.stringValue == updated.message.etag)

            let deleted = try live.simulator.deleteMessage(id: created.message.id)
            #expect(deleted.notifiedSubscriptionIDs == [id])
            _ = try await live.subscriber.notifications.first { $0.items.first?["changeType"] == "deleted" }
            let gone = try await live.call("GET", "/users/alice@contoso.com/messages/\(created.message.id)", token: token)
            #expect(gone.status == 404)
            #expect(gone.graphErrorCode == "ErrorItemNotFound")
            #expect(throws: SimulatorError.self) { try live.simulator.deleteMessage(id: created.message.id) }
        }
    }

    @Test("a notification answered with 500 is retried on the schedule until a 2xx")
    func retries() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody())
            live.subscriber.queueStatuses([500, 503], for: "/notify")
            try live.simulator.createMessage(MessageContent(subject: "retry me"), in: "alice@contoso.com")
            let received = try await live.subscriber.notifications.wait { $0.count >= 3 }
            #expect(received.count == 3)
            #expect(Set(received.map { $0.items.first?["subscriptionId"]?.stringValue }) == [id])
            #expect(received[0].body == received[2].body, "the same POST body every time")
            let attempts = try await live.simulator.waitForDeliveries { $0.filter { $0.kind == .changeNotification }.count >= 3 }
            #expect(attempts.filter { $0.kind == .changeNotification }.map(\.status) == [500, 503, 202])
            #expect(attempts.last?.isFinal == true && attempts.last?.attempt == 3)
        }
    }

    @Test("with duplicates on, the same notification arrives twice")
    func duplicates() async throws {
        try await Harness.withSimulator({ $0.duplicateNotifications = true }) { live in
            let token = try await live.appToken()
            _ = try await live.createSubscription(token: token, live.subscriptionBody())
            try live.simulator.createMessage(MessageContent(subject: "twice"), in: "alice@contoso.com")
            let received = try await live.subscriber.notifications.wait { $0.count >= 2 }
            #expect(received[0].body == received[1].body)
        }
    }

    @Test("two subscriptions sharing a URL get one batched POST")
    func batching() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let inbox = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created"))
            let all = try await live.createSubscription(
                token: token, live.subscriptionBody(resource: "users/alice@contoso.com/messages", changeType: "created"))
            let change = try live.simulator.createMessage(MessageContent(subject: "both"), in: "alice@contoso.com")
            #expect(Set(change.notifiedSubscriptionIDs) == [inbox, all])
            let delivery = try await live.subscriber.notifications.first { _ in true }
            #expect(Set(delivery.items.compactMap { $0["subscriptionId"]?.stringValue }) == [inbox, all])
        }
    }

    @Test("lifecycle events arrive at the lifecycle URL shaped like the sample; subscriptionRemoved removes it")
    func lifecycleEvents() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody())
            try live.simulator.sendLifecycleEvent(.reauthorizationRequired, subscriptionID: id)
            let reauthorize = try await live.subscriber.notifications.first { $0.path == "/lifecycle" }
            let item = try #require(reauthorize.items.first)
            #expect(Set(item.keys) == ["subscriptionId", "subscriptionExpirationDateTime", "tenantId", "clientState", "lifecycleEvent"])
            #expect(item["lifecycleEvent"] == "reauthorizationRequired")
            #expect(item["clientState"] == "secretClientValue")
            #expect(item["subscriptionId"]?.stringValue == id)

            try live.simulator.sendLifecycleEvents([.missed, .subscriptionRemoved], subscriptionID: id)
            let batch = try await live.subscriber.notifications.first { $0.items.count == 2 }
            #expect(batch.path == "/lifecycle")
            #expect(batch.items.compactMap { $0["lifecycleEvent"]?.stringValue } == ["missed", "subscriptionRemoved"])
            #expect(try await live.call("GET", "/subscriptions/\(id)", token: token).status == 404)
            #expect(throws: SimulatorError.self) { try live.simulator.sendLifecycleEvent(.missed, subscriptionID: id) }

            // Without a lifecycle URL the event goes to notificationUrl.
            let plain = try await live.createSubscription(token: token, live.subscriptionBody(path: "/plain", lifecyclePath: nil))
            try live.simulator.sendLifecycleEvent(.missed, subscriptionID: plain)
            let fallback = try await live.subscriber.notifications.first { $0.path == "/plain" }
            #expect(fallback.items.first?["lifecycleEvent"] == "missed")
        }
    }

    @Test("rich notifications carry encryptedContent that decrypts per graph-protocol 5.3, and a validation token")
    func richNotification() async throws {
        let certificate = try SelfSignedCertificate.generate(commonName: "rich-test")
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let body = live.subscriptionBody(resource: "users/alice@contoso.com/messages?$select=subject,importance")
                .setting("includeResourceData", true)
                .setting("encryptionCertificate", .string(Data(certificate.derRepresentation).base64EncodedString()))
                .setting("encryptionCertificateId", "rich-key-1")
            let noCertificate = try await live.call("POST", "/subscriptions", token: token, json: body.setting("encryptionCertificate", .null))
            #expect(noCertificate.status == 400)
            let tooLong = try await live.call(
                "POST", "/subscriptions", token: token,
                json: body.setting("expirationDateTime", .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(25 * 3600)))))
            #expect(tooLong.graphErrorMessage == "Subscription expiration can only be 1440 minutes in the future.")
            _ = try await live.createSubscription(token: token, body)

            try live.simulator.createMessage(MessageContent(subject: "secret subject", importance: .low), in: "alice@contoso.com")
            let delivery = try await live.subscriber.notifications.first { _ in true }
            let validationTokens = try #require(delivery.json?["validationTokens"]?.arrayValue)
            #expect(validationTokens.count == 1)
            let encrypted = try #require(delivery.items.first?["encryptedContent"])
            #expect(encrypted["encryptionCertificateId"] == "rich-key-1")
            #expect(encrypted["encryptionCertificateThumbprint"]?.stringValue == certificate.sha1Thumbprint)

            let privateKey = try _RSA.Encryption.PrivateKey(pemRepresentation: certificate.privateKeyPEM)
            let dataKey = try #require(Data(base64Encoded: encrypted["dataKey"]?.stringValue ?? ""))
            let key = try privateKey.decrypt(dataKey, padding: .PKCS1_OAEP)
            #expect(key.count == 32)
            let ciphertext = try #require(Data(base64Encoded: encrypted["data"]?.stringValue ?? ""))
            let mac = HMAC<SHA256>.authenticationCode(for: ciphertext, using: SymmetricKey(data: key))
            #expect(Data(mac).base64EncodedString() == encrypted["dataSignature"]?.stringValue)
            let plain = try AES._CBC.decrypt(ciphertext, using: SymmetricKey(data: key), iv: AES._CBC.IV(ivBytes: key.prefix(16)))
            let resource = try #require(JSONValue.parse(Array(plain)))
            #expect(resource["subject"] == "secret subject")
            #expect(resource["importance"] == "low")
            #expect(resource["@odata.type"] == "#Microsoft.Graph.Message")
            #expect(resource["body"] == nil, "only the $select-ed properties")
        }
    }
}
