import CurlKit
import Foundation
import Logging
import Synchronization
import _CryptoExtras

/// `/v1.0/subscriptions` (graph-protocol sections 1 and 2).
extension GraphSimulator {
    // MARK: Create

    func createSubscription(_ request: IncomingRequest, caller: Caller, exchange: GraphExchange) async -> OutgoingResponse {
        guard let body = JSONValue.parse(request.body), case .object = body else {
            return exchange.error(
                400, code: "BadRequest",
                message: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
        }
        func invalid(_ message: String) -> OutgoingResponse { exchange.error(400, code: "InvalidRequest", message: message) }
        func field(_ name: String) -> JSONValue? {
            guard let value = body.member(caseInsensitive: name), !value.isNull else { return nil }
            return value
        }
        for required in ["changeType", "notificationUrl", "resource", "expirationDateTime"] where field(required) == nil {
            return invalid("\(required) is a required property for subscription creation.")
        }
        guard let changeType = field("changeType")?.stringValue, let notificationURL = field("notificationUrl")?.stringValue,
            let resourceText = field("resource")?.stringValue, let expirationText = field("expirationDateTime")?.stringValue
        else {
            return exchange.error(
                400, code: "BadRequest",
                message: "Invalid property type: changeType, notificationUrl, resource and expirationDateTime must be strings.")
        }
        let changeTypes = changeType.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        for type in changeTypes where ChangeType(rawValue: type.lowercased()) == nil {
            return invalid("'\(type)' is not a valid change type. Supported change types are 'created', 'updated' and 'deleted'.")
        }
        if let problem = urlProblem(notificationURL, property: "notificationUrl") { return invalid(problem) }
        let lifecycleURL = field("lifecycleNotificationUrl")?.stringValue
        if let lifecycleURL, let problem = urlProblem(lifecycleURL, property: "lifecycleNotificationUrl") { return invalid(problem) }
        let clientState = field("clientState")?.stringValue
        if let clientState, clientState.count > 128 {
            return invalid("clientState is too long: the maximum length is 128 characters.")
        }
        let includeResourceData = field("includeResourceData")?.boolValue ?? false
        let encryptionCertificate = field("encryptionCertificate")?.stringValue
        let encryptionCertificateID = field("encryptionCertificateId")?.stringValue
        if includeResourceData {
            guard let encryptionCertificate, !encryptionCertificate.isEmpty else {
                return invalid("A valid encryptionCertificate is required when includeResourceData is true.")
            }
            guard let encryptionCertificateID, !encryptionCertificateID.isEmpty, encryptionCertificateID.count <= 128 else {
                return invalid("encryptionCertificateId is required when includeResourceData is true (at most 128 characters).")
            }
            guard let der = Data(base64Encoded: encryptionCertificate), let certificate = try? RegisteredCertificate(der: Array(der)),
                (2048...4096).contains(certificate.publicKey.keySizeInBits)
            else {
                return invalid(
                    "The encryptionCertificate is not a valid base64-encoded X.509 certificate with an RSA public key of 2048 to 4096 bits.")
            }
        }
        let resource = ResourcePath(resourceText)
        let kind = resource.kind
        guard kind != .unsupported else {
            return invalid("Resource '\(resourceText)' is not supported for change notifications.")
        }
        // Resolve the mailbox for Outlook resources: quota and delegated access depend on it.
        var mailboxUserID: String?
        if kind == .outlook, let (target, _) = resource.mailbox {
            switch target {
            case .me:
                guard let userID = caller.userID else {
                    return exchange.error(400, code: "BadRequest", message: "/me request is only valid with delegated authentication flow.")
                }
                mailboxUserID = userID
            case .user(let idOrUPN):
                guard let user = user(matching: idOrUPN) else {
                    return exchange.error(
                        404, code: "ExtensionError",
                        message: "Operation: Create; Exception: [Status Code: NotFound; Reason: The mailbox '\(idOrUPN)' was not found.]")
                }
                if let callerID = caller.userID, callerID != user.id {
                    return exchange.error(
                        403, code: "ExtensionError",
                        message: "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]")
                }
                mailboxUserID = user.id
            }
        }
        guard let expiration = GraphDate.parse(expirationText) else {
            return exchange.error(
                400, code: "BadRequest", message: "Invalid value for expirationDateTime: '\(expirationText)' is not a valid DateTimeOffset.")
        }
        if let problem = expirationProblem(expiration, kind: kind, includeResourceData: includeResourceData) {
            return exchange.error(400, code: problem.code, message: problem.message)
        }
        if kind == .teams, lifecycleURL == nil, expiration.timeIntervalSinceNow > 3600 {
            return invalid(
                "lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour"
            )
        }
        let creatorID = caller.userID ?? configuration.servicePrincipalID
        if let conflict = admissionProblem(
            resource: resource, changeTypes: changeTypes, creatorID: creatorID, mailboxUserID: mailboxUserID, exchange: exchange)
        {
            return conflict
        }

        let id = Identifiers.guid()
        for url in [notificationURL] + (lifecycleURL.map { [$0] } ?? []) {
            if let failure = await validateEndpoint(url, subscriptionID: id) {
                return invalid(failure)
            }
        }
        let now = Date()
        let subscription = SimulatedSubscription(
            id: id,
            resource: resourceText,
            changeType: changeTypes.joined(separator: ","),
            notificationURL: notificationURL,
            lifecycleNotificationURL: lifecycleURL,
            clientState: clientState,
            expirationDateTime: expiration,
            applicationID: configuration.clientID,
            creatorID: creatorID,
            includeResourceData: includeResourceData,
            encryptionCertificate: encryptionCertificate,
            encryptionCertificateID: encryptionCertificateID,
            latestSupportedTLSVersion: field("latestSupportedTlsVersion")?.stringValue ?? "v1_2",
            notificationQueryOptions: field("notificationQueryOptions")?.stringValue,
            notificationURLAppID: field("notificationUrlAppId")?.stringValue,
            createdAt: now,
            renewals: 0,
            reauthorizations: 0
        )
        // The handshake took time: check again, so two racing creates can't both succeed.
        if let conflict = admissionProblem(
            resource: resource, changeTypes: changeTypes, creatorID: creatorID, mailboxUserID: mailboxUserID, exchange: exchange)
        {
            return conflict
        }
        state.withLock { $0.subscriptions[id] = subscription }
        logger.info("created subscription", metadata: ["bridge.subscription": "\(id)", "bridge.resource": "\(resourceText)"])
        return exchange.json(
            201, subscriptionJSON(subscription, context: "\(graphBaseURL)/$metadata#subscriptions/$entity", includeClientState: true))
    }

    /// 409 for a repeated changeType + resource by the same creator; 403 beyond the quota.
    private func admissionProblem(
        resource: ResourcePath, changeTypes: [String], creatorID: String, mailboxUserID: String?, exchange: GraphExchange
    ) -> OutgoingResponse? {
        let wantedTypes = Set(changeTypes.map { $0.lowercased() })
        return state.withLock { state -> OutgoingResponse? in
            state.purgeExpired(now: Date())
            let active = state.orderedSubscriptions
            if configuration.rejectDuplicateSubscriptions,
                let existing = active.first(where: {
                    $0.creatorID == creatorID && ResourcePath($0.resource) == resource
                        && Set($0.changeType.split(separator: ",").map { $0.lowercased() }) == wantedTypes
                })
            {
                return exchange.error(409, code: "Conflict", message: "Subscription Id \(existing.id) already exists for the requested combination")
            }
            let sameScope: [SimulatedSubscription]
            if let mailboxUserID {
                sameScope = active.filter { mailboxUser(of: $0) == mailboxUserID }
            } else {
                sameScope = active.filter { mailboxUser(of: $0) == nil }
            }
            if sameScope.count >= state.subscriptionQuota {
                let scope = mailboxUserID == nil ? "application" : "mailbox"
                return exchange.error(
                    403, code: "ExtensionError",
                    message:
                        "Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions for this \(scope) has reached the limit of \(state.subscriptionQuota).]"
                )
            }
            return nil
        }
    }

    /// The mailbox owner's id for Outlook subscriptions (resolving `me` to the creator).
    func mailboxUser(of subscription: SimulatedSubscription) -> String? {
        let resource = ResourcePath(subscription.resource)
        guard resource.kind == .outlook, let (target, _) = resource.mailbox else { return nil }
        switch target {
        case .me: return subscription.creatorID
        case .user(let idOrUPN): return user(matching: idOrUPN)?.id
        }
    }

    /// Nil when `url` is acceptable as a notification or lifecycle URL.
    func urlProblem(_ url: String, property: String) -> String? {
        let lowered = url.lowercased()
        if lowered.hasPrefix("https://") { return nil }
        if lowered.hasPrefix("http://") {
            guard configuration.allowHTTPForLoopback else { return "The \(property) must use the HTTPS scheme." }
            let hostPart = lowered.dropFirst("http://".count).prefix { $0 != "/" && $0 != "?" }
            let host: Substring
            if hostPart.hasPrefix("[") {
                host = hostPart.prefix { $0 != "]" }.dropFirst()
            } else {
                host = hostPart.prefix { $0 != ":" }
            }
            if host == "localhost" || host.hasPrefix("127.") || host == "::1" { return nil }
            return "The \(property) must use the HTTPS scheme."
        }
        return "Invalid \(property): '\(url)' is not an absolute HTTPS URL."
    }

    /// Expiry in the past, or beyond the resource's maximum (or the configured cap).
    func expirationProblem(_ expiration: Date, kind: ResourceKind, includeResourceData: Bool) -> (code: String, message: String)? {
        let now = Date()
        guard expiration > now else {
            return (
                "InvalidRequest",
                "Subscription expiration can only be in the future. Requested expirationDateTime \(GraphDate.subscriptionFormat(expiration)) is in the past."
            )
        }
        var maximum = Double(kind.maximumMinutes(includeResourceData: includeResourceData)) * 60
        if let cap = state.withLock({ $0.maxSubscriptionLifetime }) { maximum = min(maximum, cap.timeInterval) }
        guard expiration.timeIntervalSince(now) <= maximum else {
            let minutes = maximum / 60
            let text = minutes.rounded() == minutes ? String(Int(minutes)) : String(format: "%.2f", minutes)
            return ("ExtensionError", "Subscription expiration can only be \(text) minutes in the future.")
        }
        return nil
    }

    // MARK: Validation handshake

    /// POSTs `url?validationToken=...` and checks the answer; nil on success, Graph's message otherwise.
    func validateEndpoint(_ url: String, subscriptionID: String) async -> String? {
        let token = "Validation: Testing client application reachability for subscription Request-Id: \(Identifiers.guid())"
        var encoded = FormEncoding.escape(token)
        if configuration.validationTokenUsesPlus { encoded = encoded.replacingOccurrences(of: "%20", with: "+") }
        let separator = url.contains("?") ? "&" : "?"
        let target = url + separator + "validationToken=" + encoded
        let request = CurlKit.HTTPRequest(
            method: "POST", url: target, headers: [("Content-Type", "text/plain; charset=utf-8")], body: [],
            timeout: configuration.validationTimeout, connectTimeout: configuration.validationTimeout)
        var attempt = DeliveryAttempt(
            kind: .validation, url: target, subscriptionIDs: [subscriptionID], attempt: 1, status: nil, error: nil, body: [], date: Date(),
            isFinal: true)
        let outcome: String?
        do {
            let response = try await client.execute(request)
            attempt.status = response.status
            if response.status != 200 {
                outcome = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
            } else if response.body != Array(token.utf8) {
                outcome = "Subscription validation request failed. Response must exactly match validationToken query parameter."
            } else {
                outcome = nil
            }
        } catch let error as TransportError where error.kind == .timedOut {
            attempt.error = error.description
            outcome = "Subscription validation request timed out."
        } catch {
            attempt.error = "\(error)"
            outcome = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
        }
        let record = attempt
        deliveryLog.append(record)
        return outcome
    }

    // MARK: Read, list

    /// The subscription if it exists, is unexpired and the caller may see it.
    private func visibleSubscription(_ id: String, caller: Caller) -> SimulatedSubscription? {
        state.withLock { state in
            state.purgeExpired(now: Date())
            guard let subscription = state.subscriptions[id] else { return nil }
            if let userID = caller.userID, subscription.creatorID != userID { return nil }
            return subscription
        }
    }

    private func notFound(_ id: String, exchange: GraphExchange) -> OutgoingResponse {
        exchange.error(404, code: "ResourceNotFound", message: "The object was not found. Subscription '\(id)' does not exist or has expired.")
    }

    func getSubscription(_ id: String, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard let subscription = visibleSubscription(id, caller: caller) else { return notFound(id, exchange: exchange) }
        return exchange.json(
            200, subscriptionJSON(subscription, context: "\(graphBaseURL)/$metadata#subscriptions/$entity", includeClientState: true))
    }

    /// `GET /subscriptions`: this app's subscriptions (a delegated caller's own), paged by `$skiptoken`.
    func listSubscriptions(_ request: IncomingRequest, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        let all = state.withLock { state in
            state.purgeExpired(now: Date())
            return state.orderedSubscriptions
        }.filter { caller.userID == nil || $0.creatorID == caller.userID }
        let offset = request.queryValue("$skiptoken").flatMap { Int($0) } ?? 0
        let pageSize = max(1, configuration.subscriptionPageSize)
        let page = all.dropFirst(offset).prefix(pageSize)
        var members: [JSONValue.Member] = [.init("@odata.context", .string("\(graphBaseURL)/$metadata#subscriptions"))]
        if offset + page.count < all.count {
            members.append(.init("@odata.nextLink", .string("\(graphBaseURL)/subscriptions?$skiptoken=\(offset + page.count)")))
        }
        members.append(.init("value", .array(page.map { subscriptionJSON($0, context: nil, includeClientState: false) })))
        return exchange.json(200, .object(members))
    }

    // MARK: Update, delete, reauthorize

    func updateSubscription(_ id: String, request: IncomingRequest, caller: Caller, exchange: GraphExchange) async -> OutgoingResponse {
        guard let body = JSONValue.parse(request.body), case .object = body else {
            return exchange.error(
                400, code: "BadRequest",
                message: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
        }
        guard var subscription = visibleSubscription(id, caller: caller) else { return notFound(id, exchange: exchange) }
        let expirationText = body.member(caseInsensitive: "expirationDateTime")?.stringValue
        let notificationURL = body.member(caseInsensitive: "notificationUrl")?.stringValue
        guard expirationText != nil || notificationURL != nil else {
            return exchange.error(
                400, code: "InvalidRequest",
                message: "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.")
        }
        if let lifecycle = body.member(caseInsensitive: "lifecycleNotificationUrl"), !lifecycle.isNull,
            lifecycle.stringValue != subscription.lifecycleNotificationURL
        {
            return exchange.error(
                400, code: "InvalidRequest",
                message: "lifecycleNotificationUrl can only be set when the subscription is created; delete the subscription and create it again.")
        }
        // Key rotation (graph-protocol 5.3): a rich subscription moves to a new certificate by
        // PATCHing `encryptionCertificate` and `encryptionCertificateId`, usually with the renewal.
        // A partial update: a field left out keeps its value. Later notifications are encrypted for
        // the new certificate; those already queued keep the one they were made with.
        let newCertificate = body.member(caseInsensitive: "encryptionCertificate").flatMap { $0.isNull ? nil : $0.stringValue }
        let newCertificateID = body.member(caseInsensitive: "encryptionCertificateId").flatMap { $0.isNull ? nil : $0.stringValue }
        if newCertificate != nil || newCertificateID != nil {
            guard subscription.includeResourceData else {
                return exchange.error(
                    400, code: "InvalidRequest",
                    message: "encryptionCertificate and encryptionCertificateId apply only to a subscription with includeResourceData set to true.")
            }
            if let newCertificateID {
                guard !newCertificateID.isEmpty, newCertificateID.count <= 128 else {
                    return exchange.error(
                        400, code: "InvalidRequest", message: "encryptionCertificateId must be 1 to 128 characters.")
                }
                subscription.encryptionCertificateID = newCertificateID
            }
            if let newCertificate {
                guard let der = Data(base64Encoded: newCertificate), let certificate = try? RegisteredCertificate(der: Array(der)),
                    (2048...4096).contains(certificate.publicKey.keySizeInBits)
                else {
                    return exchange.error(
                        400, code: "InvalidRequest",
                        message: "The encryptionCertificate is not a valid base64-encoded X.509 certificate with an RSA public key of 2048 to 4096 bits.")
                }
                subscription.encryptionCertificate = newCertificate
            }
        }
        if let expirationText {
            guard let expiration = GraphDate.parse(expirationText) else {
                return exchange.error(
                    400, code: "BadRequest", message: "Invalid value for expirationDateTime: '\(expirationText)' is not a valid DateTimeOffset.")
            }
            if let problem = expirationProblem(
                expiration, kind: ResourcePath(subscription.resource).kind, includeResourceData: subscription.includeResourceData)
            {
                return exchange.error(400, code: problem.code, message: problem.message)
            }
            subscription.expirationDateTime = expiration
            subscription.renewals += 1
        }
        if let notificationURL, notificationURL != subscription.notificationURL {
            if let problem = urlProblem(notificationURL, property: "notificationUrl") {
                return exchange.error(400, code: "InvalidRequest", message: problem)
            }
            if let failure = await validateEndpoint(notificationURL, subscriptionID: id) {
                return exchange.error(400, code: "InvalidRequest", message: failure)
            }
            subscription.notificationURL = notificationURL
        }
        let updated = subscription
        let stillThere: Bool = state.withLock { state in
            state.purgeExpired(now: Date())
            guard let current = state.subscriptions[id] else { return false }
            var merged = updated
            merged.reauthorizations = current.reauthorizations
            state.subscriptions[id] = merged
            return true
        }
        guard stillThere else { return notFound(id, exchange: exchange) }
        return exchange.json(200, subscriptionJSON(updated, context: "\(graphBaseURL)/$metadata#subscriptions/$entity", includeClientState: true))
    }

    func deleteSubscription(_ id: String, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard visibleSubscription(id, caller: caller) != nil else { return notFound(id, exchange: exchange) }
        state.withLock { _ = $0.subscriptions.removeValue(forKey: id) }
        return .empty(204)
    }

    func reauthorizeSubscription(_ id: String, caller: Caller, exchange: GraphExchange) -> OutgoingResponse {
        guard visibleSubscription(id, caller: caller) != nil else { return notFound(id, exchange: exchange) }
        state.withLock { $0.subscriptions[id]?.reauthorizations += 1 }
        return .empty(204)
    }

    // MARK: Shape

    func subscriptionJSON(_ subscription: SimulatedSubscription, context: String?, includeClientState: Bool) -> JSONValue {
        var members: [JSONValue.Member] = []
        if let context { members.append(.init("@odata.context", .string(context))) }
        members += [
            .init("id", .string(subscription.id)),
            .init("resource", .string(subscription.resource)),
            .init("applicationId", .string(subscription.applicationID)),
            .init("changeType", .string(subscription.changeType)),
            .init("clientState", includeClientState ? .optional(subscription.clientState) : .null),
            .init("notificationUrl", .string(subscription.notificationURL)),
            .init("notificationQueryOptions", .optional(subscription.notificationQueryOptions)),
            .init("lifecycleNotificationUrl", .optional(subscription.lifecycleNotificationURL)),
            .init("expirationDateTime", .string(GraphDate.subscriptionFormat(subscription.expirationDateTime))),
            .init("creatorId", .string(subscription.creatorID)),
            .init("includeResourceData", .bool(subscription.includeResourceData)),
            .init("latestSupportedTlsVersion", .string(subscription.latestSupportedTLSVersion)),
            .init("encryptionCertificate", .null),
            .init("encryptionCertificateId", .optional(subscription.encryptionCertificateID)),
            .init("notificationUrlAppId", .optional(subscription.notificationURLAppID)),
        ]
        return .object(members)
    }
}
