import CurlKit
import Foundation
import Testing

@testable import GraphSimulator

@Suite("subscriptions")
struct SubscriptionTests {
    @Test("create performs the validation handshake on both URLs, then answers 201 with Graph's subscription object")
    func createWithHandshake() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let response = try await live.call(
                "POST", "/subscriptions", token: token, json: live.subscriptionBody(), headers: [("client-request-id", "my-client-id")])
            #expect(response.status == 201, "\(response.bodyText)")
            #expect(response.header("client-request-id") == "my-client-id")
            #expect(response.requestID?.count == 36)
            let body = try #require(response.json)
            #expect(body["@odata.context"]?.stringValue == "\(live.graph)/$metadata#subscriptions/$entity")
            let id = try #require(body["id"]?.stringValue)
            #expect(body["applicationId"]?.stringValue == live.simulator.configuration.clientID)
            #expect(body["creatorId"]?.stringValue == live.simulator.configuration.servicePrincipalID)
            #expect(body["clientState"] == "secretClientValue")
            #expect(body["changeType"] == "created,updated,deleted")
            #expect(body["lifecycleNotificationUrl"]?.stringValue == live.subscriberURL + "/lifecycle")
            let expiry = try #require(body["expirationDateTime"]?.stringValue)
            #expect(expiry.count == "2016-11-20T18:23:45.9356913Z".count && expiry.hasSuffix("Z"))

            let handshakes = live.subscriber.handshakes.items
            #expect(handshakes.map(\.path).sorted() == ["/lifecycle", "/notify"])
            for handshake in handshakes {
                let token = try #require(handshake.validationToken)
                #expect(token.hasPrefix("Validation: Testing client application reachability for subscription Request-Id: "))
                #expect(handshake.query?.contains("%20") == true && handshake.query?.contains("%3A") == true, "spaces and colons arrive URL-encoded")
                #expect(handshake.contentType?.hasPrefix("text/plain") == true)
            }
            let validations = live.simulator.deliveries.filter { $0.kind == .validation }
            #expect(validations.count == 2 && validations.allSatisfy { $0.status == 200 && $0.subscriptionIDs == [id] })
            #expect(live.simulator.subscription(id: id)?.clientState == "secretClientValue")
        }
    }

    @Test("with validationTokenUsesPlus the token's spaces arrive as + and the subscriber must decode them")
    func plusEncodedToken() async throws {
        try await Harness.withSimulator({ $0.validationTokenUsesPlus = true }) { live in
            let token = try await live.appToken()
            _ = try await live.createSubscription(token: token, live.subscriptionBody(lifecyclePath: nil))
            let handshake = try #require(live.subscriber.handshakes.items.first)
            #expect(handshake.query?.contains("+Testing+client+") == true)
            #expect(handshake.query?.contains("%20") == false)
            #expect(handshake.validationToken?.contains(" Testing client ") == true)
        }
    }

    @Test("PATCH of notificationUrl validates the new URL first")
    func patchNotificationURL() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody(lifecyclePath: nil))
            live.subscriber.setValidation(.status(500), for: "/broken")
            let refused = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token, json: .object(["notificationUrl": .string(live.subscriberURL + "/broken")]))
            #expect(refused.status == 400)
            #expect(refused.graphErrorMessage?.hasPrefix("Subscription validation request failed.") == true)
            #expect(live.simulator.subscription(id: id)?.notificationURL == live.subscriberURL + "/notify")
            let moved = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token, json: .object(["notificationUrl": .string(live.subscriberURL + "/moved")]))
            #expect(moved.status == 200)
            #expect(moved.json?["notificationUrl"]?.stringValue == live.subscriberURL + "/moved")
            #expect(live.subscriber.handshakes.items.map(\.path) == ["/notify", "/broken", "/moved"])
            try live.simulator.createMessage(MessageContent(subject: "after the move"), in: "alice@contoso.com")
            _ = try await live.subscriber.notifications.first { $0.path == "/moved" }
        }
    }

    @Test("create fails with Graph's messages when the subscriber answers the wrong body, a non-200 or too slowly")
    func handshakeFailures() async throws {
        try await Harness.withSimulator({ $0.validationTimeout = .seconds(2) }) { live in
            let token = try await live.appToken()
            live.subscriber.setValidation(.wrongBody, for: "/wrong")
            live.subscriber.setValidation(.status(403), for: "/forbidden")
            live.subscriber.setValidation(.delay(.seconds(4)), for: "/slow")
            let cases: [(String, String)] = [
                ("/wrong", "Subscription validation request failed. Response must exactly match validationToken query parameter."),
                ("/forbidden", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."),
                ("/slow", "Subscription validation request timed out."),
            ]
            for (path, message) in cases {
                let response = try await live.call(
                    "POST", "/subscriptions", token: token, json: live.subscriptionBody(path: path, lifecyclePath: nil))
                #expect(response.status == 400, "\(path)")
                #expect(response.graphErrorCode == "InvalidRequest", "\(path)")
                #expect(response.graphErrorMessage == message, "\(path)")
                #expect(response.json?["error"]?["innerError"]?["request-id"]?.stringValue == response.requestID)
            }
            // A lifecycle URL that fails its own handshake fails the create too.
            let lifecycle = try await live.call("POST", "/subscriptions", token: token, json: live.subscriptionBody(lifecyclePath: "/forbidden"))
            #expect(lifecycle.status == 400)
            // Nothing is created, and nothing answers on a closed port either.
            var unreachable = live.subscriptionBody(lifecyclePath: nil)
            unreachable = unreachable.setting("notificationUrl", "http://127.0.0.1:1/notify")
            #expect(try await live.call("POST", "/subscriptions", token: token, json: unreachable).status == 400)
            #expect(live.simulator.subscriptions.isEmpty)
        }
    }

    @Test("create validates the body as Graph does: required fields, URLs, clientState, expiry and the lifetime cap")
    func createValidation() async throws {
        try await Harness.withSimulator({ $0.maxSubscriptionLifetime = .seconds(10) }) { live in
            let token = try await live.appToken()
            func create(_ body: JSONValue) async throws -> CurlKit.HTTPResponse {
                try await live.call("POST", "/subscriptions", token: token, json: body)
            }
            let good = live.subscriptionBody(expiresIn: 8)
            var missing = good
            if case .object(let members) = good { missing = .object(members.filter { $0.key != "expirationDateTime" }) }
            let noExpiry = try await create(missing)
            #expect(noExpiry.status == 400)
            #expect(noExpiry.graphErrorMessage == "expirationDateTime is a required property for subscription creation.")

            let badJSON = try await live.client.execute(
                CurlKit.HTTPRequest(
                    method: "POST", url: live.graph + "/subscriptions",
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                    body: Array("{nope".utf8)))
            #expect(badJSON.status == 400)
            #expect(badJSON.graphErrorCode == "BadRequest")

            #expect(try await create(good.setting("notificationUrl", "http://example.com/notify")).status == 400, "plain http off loopback")
            #expect(try await create(good.setting("changeType", "created,renamed")).status == 400)
            #expect(try await create(good.setting("clientState", .string(String(repeating: "x", count: 129)))).status == 400)
            #expect(try await create(good.setting("resource", "planets/mars")).status == 400)
            let past = try await create(good.setting("expirationDateTime", .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(-60)))))
            #expect(past.status == 400)

            let beyondCap = try await create(live.subscriptionBody(expiresIn: 60))
            #expect(beyondCap.status == 400)
            #expect(beyondCap.graphErrorCode == "ExtensionError")
            #expect(beyondCap.graphErrorMessage?.hasPrefix("Subscription expiration can only be ") == true)
            #expect(live.simulator.deliveries.isEmpty, "no handshake for an invalid request")

            live.simulator.setMaxSubscriptionLifetime(nil)
            let beyondTable = try await create(live.subscriptionBody(expiresIn: 4231 * 60))
            #expect(beyondTable.graphErrorMessage == "Subscription expiration can only be 4230 minutes in the future.")
            #expect(try await create(live.subscriptionBody(expiresIn: 4229 * 60)).status == 201)

            // http on loopback is fine; exactly 128 characters of clientState too.
            #expect(
                try await create(live.subscriptionBody(resource: "users/bob@contoso.com/messages", clientState: String(repeating: "y", count: 128)))
                    .status == 201)
        }
    }

    @Test("a repeated changeType + resource is 409; beyond the quota is 403")
    func conflictAndQuota() async throws {
        try await Harness.withSimulator({ $0.subscriptionQuota = 2 }) { live in
            let token = try await live.appToken()
            let first = try await live.createSubscription(token: token, live.subscriptionBody())
            let again = try await live.call("POST", "/subscriptions", token: token, json: live.subscriptionBody())
            #expect(again.status == 409)
            #expect(again.graphErrorMessage == "Subscription Id \(first) already exists for the requested combination")
            _ = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created"))
            let overQuota = try await live.call("POST", "/subscriptions", token: token, json: live.subscriptionBody(changeType: "updated"))
            #expect(overQuota.status == 403)
            #expect(overQuota.graphErrorMessage?.contains("limit of 2") == true)
            // Another mailbox has its own quota.
            _ = try await live.createSubscription(token: token, live.subscriptionBody(resource: "users/bob@contoso.com/messages"))
        }
    }

    @Test("GET, PATCH, reauthorize, DELETE; 404 ResourceNotFound once forgotten, expired or deleted")
    func lifecycleOfASubscription() async throws {
        try await Harness.withSimulator({ $0.maxSubscriptionLifetime = .seconds(600) }) { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody(expiresIn: 60))
            let read = try await live.call("GET", "/subscriptions/\(id)", token: token)
            #expect(read.status == 200)
            #expect(read.json?["id"]?.stringValue == id)

            let later = Date().addingTimeInterval(500)
            let patched = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token, json: .object(["expirationDateTime": .string(GraphDate.subscriptionFormat(later))]))
            #expect(patched.status == 200)
            let newExpiry = try #require(patched.json?["expirationDateTime"]?.stringValue.flatMap(GraphDate.parse))
            #expect(abs(newExpiry.timeIntervalSince(later)) < 0.001)
            #expect(live.simulator.subscription(id: id)?.renewals == 1)

            let tooFar = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token,
                json: .object(["expirationDateTime": .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(700)))]))
            #expect(tooFar.status == 400)
            let empty = try await live.call("PATCH", "/subscriptions/\(id)", token: token, json: .object([:]))
            #expect(
                empty.graphErrorMessage == "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.")
            let addLifecycle = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token, json: .object(["lifecycleNotificationUrl": .string(live.subscriberURL + "/other")]))
            #expect(addLifecycle.status == 400)

            #expect(try await live.call("POST", "/subscriptions/\(id)/reauthorize", token: token).status == 204)
            #expect(live.simulator.subscription(id: id)?.reauthorizations == 1)

            #expect(live.simulator.forgetSubscription(id: id))
            for (method, path) in [("GET", "/subscriptions/\(id)"), ("POST", "/subscriptions/\(id)/reauthorize"), ("DELETE", "/subscriptions/\(id)")]
            {
                let gone = try await live.call(method, path, token: token)
                #expect(gone.status == 404, "\(method) \(path)")
                #expect(gone.graphErrorCode == "ResourceNotFound")
            }
            let renewGone = try await live.call(
                "PATCH", "/subscriptions/\(id)", token: token, json: .object(["expirationDateTime": .string(GraphDate.subscriptionFormat(later))]))
            #expect(renewGone.status == 404)
            #expect(renewGone.graphErrorCode == "ResourceNotFound")

            let second = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "created", expiresIn: 60))
            #expect(try await live.call("DELETE", "/subscriptions/\(second)", token: token).status == 204)
            #expect(try await live.call("GET", "/subscriptions/\(second)", token: token).status == 404)

            let third = try await live.createSubscription(token: token, live.subscriptionBody(changeType: "updated", expiresIn: 60))
            #expect(live.simulator.expireSubscription(id: third))
            #expect(try await live.call("GET", "/subscriptions/\(third)", token: token).status == 404)
        }
    }

    @Test("a subscription disappears when its expirationDateTime passes")
    func realExpiry() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            let id = try await live.createSubscription(token: token, live.subscriptionBody(expiresIn: 3))
            // A machine so busy that the create's handshake took the 3 s finds it gone already:
            // that is the same fact, seen late.
            if let expiry = live.simulator.subscription(id: id)?.expirationDateTime {
                let status = try await live.call("GET", "/subscriptions/\(id)", token: token).status
                // Found while it lasts (an answer after the expiry proves nothing here).
                if Date() < expiry { #expect(status == 200) }
                try await Task.sleep(for: .seconds(max(0, expiry.timeIntervalSinceNow) + 0.1))  // the event is the clock itself
            }
            #expect(try await live.call("GET", "/subscriptions/\(id)", token: token).status == 404)
            #expect(live.simulator.subscriptions.isEmpty)
        }
    }

    @Test("list is paged with @odata.nextLink and never returns clientState")
    func listPaging() async throws {
        try await Harness.withSimulator({ $0.subscriptionPageSize = 2 }) { live in
            let token = try await live.appToken()
            var created: [String] = []
            for type in ["created", "updated", "deleted", "created,updated", "updated,deleted"] {
                created.append(try await live.createSubscription(token: token, live.subscriptionBody(changeType: type, lifecyclePath: nil)))
            }
            var seen: [String] = []
            var next: String? = "/subscriptions"
            var pages = 0
            while let url = next {
                let page = try await live.call("GET", url, token: token)
                #expect(page.status == 200)
                let body = try #require(page.json)
                for item in body["value"]?.arrayValue ?? [] {
                    seen.append(item["id"]?.stringValue ?? "")
                    #expect(item["clientState"] == .null)
                }
                next = body["@odata.nextLink"]?.stringValue
                pages += 1
            }
            #expect(pages == 3)
            #expect(seen == created)
        }
    }

    @Test("injected faults answer 429 with Retry-After (and 503), then the endpoint recovers")
    func faultInjection() async throws {
        try await Harness.withSimulator { live in
            let token = try await live.appToken()
            live.simulator.injectFault(.tooManyRequests(retryAfter: 7), on: .createSubscription, count: 2)
            for _ in 0..<2 {
                let throttled = try await live.call("POST", "/subscriptions", token: token, json: live.subscriptionBody())
                #expect(throttled.status == 429)
                #expect(throttled.header("Retry-After") == "7")
                #expect(throttled.retryAfter == .seconds(7))
                #expect(throttled.graphErrorCode == "TooManyRequests")
            }
            let id = try await live.createSubscription(token: token, live.subscriptionBody())
            live.simulator.injectFault(.serviceUnavailable(retryAfter: 3), on: .updateSubscription)
            let later = JSONValue.object(["expirationDateTime": .string(GraphDate.subscriptionFormat(Date().addingTimeInterval(1200)))])
            let unavailable = try await live.call("PATCH", "/subscriptions/\(id)", token: token, json: later)
            #expect(unavailable.status == 503)
            #expect(unavailable.header("Retry-After") == "3")
            #expect(try await live.call("PATCH", "/subscriptions/\(id)", token: token, json: later).status == 200)

            live.simulator.injectFault(.tooManyRequests(retryAfter: 1), on: .token)
            let tokenThrottled = try await live.postForm(
                live.simulator.tokenURL,
                [
                    ("client_id", live.simulator.configuration.clientID), ("client_secret", live.simulator.configuration.clientSecret!),
                    ("scope", "https://graph.microsoft.com/.default"), ("grant_type", "client_credentials"),
                ])
            #expect(tokenThrottled.status == 429)
            #expect(tokenThrottled.json?["error"] == "temporarily_unavailable")

            // The call log has every call, with the status answered.
            let log = live.simulator.requests
            #expect(log.filter { $0.method == "POST" && $0.path == "/v1.0/subscriptions" }.map(\.status) == [429, 429, 201])
            #expect(log.first { $0.method == "PATCH" }?.bodyText.contains("expirationDateTime") == true)
            #expect(log.first { $0.method == "PATCH" }?.header("authorization") == "Bearer \(token)")
        }
    }

    @Test("delegated callers see and manage only their own subscriptions; /me needs a delegated token")
    func delegatedScope() async throws {
        try await Harness.withSimulator({ $0.autoApproveDeviceCodesAs = "bob@contoso.com" }) { live in
            let app = try await live.appToken()
            let appOwned = try await live.createSubscription(token: app, live.subscriptionBody())
            let meWithApp = try await live.call("POST", "/subscriptions", token: app, json: live.subscriptionBody(resource: "me/messages"))
            #expect(meWithApp.status == 400)
            #expect(meWithApp.graphErrorMessage == "/me request is only valid with delegated authentication flow.")

            let clientID = live.simulator.configuration.clientID
            let started = try await live.postForm(
                "\(live.simulator.authorityURL)/common/oauth2/v2.0/devicecode", [("client_id", clientID), ("scope", "Mail.Read")])
            let deviceCode = try #require(started.json?["device_code"]?.stringValue)
            let granted = try await live.postForm(
                live.simulator.tokenURL,
                [("client_id", clientID), ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode)])
            let bob = try #require(granted.json?["access_token"]?.stringValue)
            let mine = try await live.createSubscription(token: bob, live.subscriptionBody(resource: "me/mailFolders('Inbox')/messages"))
            #expect(live.simulator.subscription(id: mine)?.creatorID == SimulatedUser.bob.id)
            let list = try await live.call("GET", "/subscriptions", token: bob)
            #expect(list.json?["value"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [mine])
            #expect(try await live.call("GET", "/subscriptions/\(appOwned)", token: bob).status == 404)
            #expect(
                try await live.call("POST", "/subscriptions", token: bob, json: live.subscriptionBody(resource: "users/alice@contoso.com/messages"))
                    .status == 403)
        }
    }
}
