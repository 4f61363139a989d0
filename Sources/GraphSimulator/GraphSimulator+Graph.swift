import Foundation
import Synchronization

/// Who is calling Graph, from the bearer token.
struct Caller: Sendable {
    /// The signed-in user; nil for app-only tokens.
    var userID: String?
}

/// Per-request context for Graph answers: the ids every response carries.
struct GraphExchange: Sendable {
    var requestID: String
    var clientRequestID: String

    func error(_ status: Int, code: String, message: String, headers: [(name: String, value: String)] = []) -> OutgoingResponse {
        let body: JSONValue = .object([
            "error": .object([
                "code": .string(code),
                "message": .string(message),
                "innerError": .object([
                    "date": .string(GraphDate.innerErrorFormat(Date())),
                    "request-id": .string(requestID),
                    "client-request-id": .string(clientRequestID),
                ]),
            ])
        ])
        var response = OutgoingResponse.json(status, body)
        response.headers += headers
        return response
    }

    func json(_ status: Int, _ value: JSONValue) -> OutgoingResponse {
        .json(status, value, contentType: "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
    }
}

extension GraphSimulator {
    /// `/v1.0/...`: faults, then authentication, then the resource.
    func handleGraph(_ request: IncomingRequest, path: [String]) async -> OutgoingResponse {
        let requestID = Identifiers.guid()
        let exchange = GraphExchange(requestID: requestID, clientRequestID: request.header("client-request-id") ?? requestID)
        var response: OutgoingResponse
        if path.count == 1, path[0].lowercased() == "$batch" {
            response = await handleBatch(request, exchange: exchange)
        } else {
            response = await withinMailboxLimit(request, path: path, exchange: exchange) { await routeGraph(request, path: path, exchange: exchange) }
        }
        response.headers += [
            ("request-id", exchange.requestID),
            ("client-request-id", exchange.clientRequestID),
            (
                "x-ms-ags-diagnostic",
                #"{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"graph-simulator"}}"#
            ),
            ("Cache-Control", "no-cache"),
        ]
        if !response.body.isEmpty, (200..<300).contains(response.status) { response.headers.append(("OData-Version", "4.0")) }
        return response
    }

    private func routeGraph(_ request: IncomingRequest, path: [String], exchange: GraphExchange) async -> OutgoingResponse {
        let lowered = path.map { $0.lowercased() }
        let method = request.method
        enum Route {
            case createSubscription, listSubscriptions
            case getSubscription(String), updateSubscription(String), deleteSubscription(String), reauthorize(String)
            case message(ResourcePath)
            case delta(ResourcePath)
            case sendMail(ResourcePath)
            case methodNotAllowed
            case notFound(String)
        }
        let route: Route
        if lowered.first == "subscriptions" {
            switch (lowered.count, method) {
            case (1, "POST"): route = .createSubscription
            case (1, "GET"): route = .listSubscriptions
            case (2, "GET"): route = .getSubscription(path[1])
            case (2, "PATCH"): route = .updateSubscription(path[1])
            case (2, "DELETE"): route = .deleteSubscription(path[1])
            case (3, "POST") where lowered[2] == "reauthorize": route = .reauthorize(path[1])
            case (1, _), (2, _): route = .methodNotAllowed
            default: route = .notFound(path.count > 2 ? path[2] : path.last ?? "")
            }
        } else {
            let resource = ResourcePath(path.joined(separator: "/"))
            if let (_, rest) = resource.mailbox, rest.count == 1, rest.first == "sendmail" || rest.first == "microsoft.graph.sendmail" {
                route = method == "POST" ? .sendMail(resource) : .methodNotAllowed
            } else if Self.deltaCollection(resource) != nil {
                route = method == "GET" ? .delta(resource) : .methodNotAllowed
            } else if resource.mailbox != nil, resource.segments.count >= 3, resource.segments[resource.segments.count - 2] == "messages" {
                route = method == "GET" ? .message(resource) : .methodNotAllowed
            } else {
                route = .notFound(path.last ?? "")
            }
        }
        let endpoint: SimulatedEndpoint
        switch route {
        case .createSubscription: endpoint = .createSubscription
        case .listSubscriptions: endpoint = .listSubscriptions
        case .getSubscription: endpoint = .getSubscription
        case .updateSubscription: endpoint = .updateSubscription
        case .deleteSubscription: endpoint = .deleteSubscription
        case .reauthorize: endpoint = .reauthorizeSubscription
        case .message: endpoint = .getMessage
        case .delta: endpoint = .delta
        case .sendMail: endpoint = .sendMail
        case .methodNotAllowed, .notFound: endpoint = .anyGraph
        }
        if let response = await faultResponse(for: endpoint, isGraph: true, exchange: exchange) { return response }
        let caller: Caller
        switch authenticate(request) {
        case .success(let authenticated): caller = authenticated
        case .failure(let message):
            return exchange.error(
                401, code: "InvalidAuthenticationToken", message: message,
                headers: [
                    (
                        "WWW-Authenticate",
                        #"Bearer realm="", authorization_uri="\#(authorityURL)/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#
                    )
                ])
        }
        switch route {
        case .createSubscription: return await createSubscription(request, caller: caller, exchange: exchange)
        case .listSubscriptions: return listSubscriptions(request, caller: caller, exchange: exchange)
        case .getSubscription(let id): return getSubscription(id, caller: caller, exchange: exchange)
        case .updateSubscription(let id): return await updateSubscription(id, request: request, caller: caller, exchange: exchange)
        case .deleteSubscription(let id): return deleteSubscription(id, caller: caller, exchange: exchange)
        case .reauthorize(let id): return reauthorizeSubscription(id, caller: caller, exchange: exchange)
        case .message(let resource): return getMessage(resource, request: request, caller: caller, exchange: exchange)
        case .delta(let resource): return messageDelta(resource, request: request, caller: caller, exchange: exchange)
        case .sendMail(let resource): return sendMail(resource, request: request, caller: caller, exchange: exchange)
        case .methodNotAllowed:
            return exchange.error(405, code: "Request_BadRequest", message: "Specified HTTP method is not allowed for the request target.")
        case .notFound(let segment):
            return exchange.error(400, code: "BadRequest", message: "Resource not found for the segment '\(segment)'.")
        }
    }

    enum AuthenticationOutcome {
        case success(Caller)
        case failure(String)
    }

    /// `Authorization: Bearer <token>` with a token this simulator issued and that hasn't expired.
    func authenticate(_ request: IncomingRequest) -> AuthenticationOutcome {
        guard let header = request.header("Authorization"), header.lowercased().hasPrefix("bearer ") else {
            return .failure("Access token is empty.")
        }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return .failure("Access token is empty.") }
        guard let grant = state.withLock({ $0.accessTokens[token] }) else {
            if configuration.accessTokenFormat == .jwt, !token.contains(".") {
                return .failure("IDX14100: JWT is not well formed, there are no dots (.).")
            }
            return .failure("Access token validation failure. Invalid audience.")
        }
        guard grant.expiresAt > Date() else { return .failure("Lifetime validation failed, the token is expired.") }
        return .success(Caller(userID: grant.userID))
    }
}

/// Graph's refusal of a request, as the answer to send.
struct GraphRefusal: Error {
    let response: OutgoingResponse
}

extension GraphSimulator {
    /// The answer an injected fault gives instead of the real one; nil when there is none (or it
    /// only delayed the call).
    func faultResponse(for endpoint: SimulatedEndpoint, isGraph: Bool, exchange: GraphExchange) async -> OutgoingResponse? {
        guard let fault = state.withLock({ $0.takeFault(for: endpoint, isGraph: isGraph) }) else { return nil }
        switch fault {
        case .tooManyRequests(let seconds):
            return exchange.error(
                429, code: "TooManyRequests", message: "Too many requests, please retry after \(seconds) seconds.",
                headers: [("Retry-After", String(seconds))])
        case .serviceUnavailable(let seconds):
            return exchange.error(
                503, code: "ServiceUnavailable", message: "The service is temporarily unavailable. Please retry later.",
                headers: seconds.map { [("Retry-After", String($0))] } ?? [])
        case .error(let status, let code, let message):
            return exchange.error(status, code: code, message: message)
        case .delay(let duration):
            try? await Task.sleep(for: duration)
            return nil
        }
    }

    /// The user whose mailbox `target` names, as Graph resolves it for mail calls: `/me` only with
    /// a delegated token, an unknown user 404, and a delegated caller only in its own mailbox.
    func mailboxOwner(_ target: ResourcePath.MailboxTarget, caller: Caller, exchange: GraphExchange) -> Result<SimulatedUser, GraphRefusal> {
        let owner: SimulatedUser
        switch target {
        case .me:
            guard let userID = caller.userID, let found = user(matching: userID) else {
                return .failure(GraphRefusal(response: exchange.error(400, code: "BadRequest", message: "/me request is only valid with delegated authentication flow.")))
            }
            owner = found
        case .user(let idOrUPN):
            guard let found = user(matching: idOrUPN) else {
                return .failure(GraphRefusal(response: exchange.error(404, code: "ErrorInvalidUser", message: "The requested user '\(idOrUPN)' is invalid.")))
            }
            owner = found
        }
        if let callerID = caller.userID, callerID != owner.id {
            return .failure(GraphRefusal(response: exchange.error(403, code: "ErrorAccessDenied", message: "Access is denied. Check credentials and try again.")))
        }
        return .success(owner)
    }
}
