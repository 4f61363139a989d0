public import Transport
import Foundation

/// The keys an authority signs `validationTokens` with, as one fetch found them.
public struct PublishedSigningKeys: Sendable {
    public var keys: JSONWebKeySet
    /// The tenant id the authority's `issuer` names: it resolves a domain in `graph.tenant` to the
    /// GUID that token issuers carry. nil when the source doesn't say.
    public var tenantID: String?

    public init(keys: JSONWebKeySet, tenantID: String? = nil) {
        self.keys = keys
        self.tenantID = tenantID
    }
}

/// Where the signing keys come from: the authority over HTTP in the bridge, a fixed set in tests.
public protocol SigningKeySource: Sendable {
    func fetchSigningKeys() async throws -> PublishedSigningKeys
}

/// The tenant's OpenID configuration (`{authority}/{tenant}/v2.0/.well-known/openid-configuration`),
/// then the JWKS its `jwks_uri` names. Both are fetched on every call: ``SigningKeyCache`` decides
/// how often that is.
public struct AuthoritySigningKeys: SigningKeySource {
    let http: any OutgoingTransport
    let authority: String
    let tenant: String

    public init(http: any OutgoingTransport, endpoints: GraphEndpoints, tenant: String) {
        self.http = http
        self.authority = endpoints.authority
        self.tenant = tenant
    }

    /// `{authority}/{tenant}/v2.0/.well-known/openid-configuration`.
    public var discoveryURL: String { "\(authority)/\(tenant)/v2.0/.well-known/openid-configuration" }

    public func fetchSigningKeys() async throws -> PublishedSigningKeys {
        struct Configuration: Decodable {
            var issuer: String?
            var jwks_uri: String
        }
        let configuration = try JSONDecoder().decode(Configuration.self, from: Data(try await get(discoveryURL)))
        let keys = try JSONWebKeySet(json: try await get(configuration.jwks_uri))
        return PublishedSigningKeys(keys: keys, tenantID: configuration.issuer.flatMap(Self.tenantID(fromIssuer:)))
    }

    /// `{host}/{tenant}/v2.0` → `{tenant}`; nil for the multi-tenant placeholder `{tenantid}`.
    static func tenantID(fromIssuer issuer: String) -> String? {
        let segments = issuer.split(separator: "/")
        guard segments.count >= 3, segments.last == "v2.0" else { return nil }
        let tenant = String(segments[segments.count - 2])
        return tenant.hasPrefix("{") ? nil : tenant
    }

    private func get(_ url: String) async throws -> [UInt8] {
        let response = try await http.execute(HTTPRequest(method: "GET", url: url, headers: [("Accept", "application/json")], timeout: .seconds(15)))
        guard (200..<300).contains(response.status) else {
            throw GraphError(
                kind: GraphError.kind(forStatus: response.status), status: response.status, code: nil,
                message: "GET \(url) answered \(response.status)", requestID: response.requestID)
        }
        return response.body
    }
}
