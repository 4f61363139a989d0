import Foundation

/// Where a tenant signs in and where Graph answers: a national cloud's preset, or explicit URLs.
public struct GraphEndpoints: Sendable, Hashable {
    /// `https://login.microsoftonline.com` and friends (no tenant, no trailing slash).
    public var authority: String
    /// `https://graph.microsoft.com/v1.0` and friends (no trailing slash).
    public var graphBase: String

    public enum Cloud: String, Sendable, CaseIterable {
        case global
        case usgov
        case usgovDoD = "usgov-dod"
        case china
    }

    public init(authority: String, graphBase: String) {
        self.authority = Self.trimmed(authority)
        self.graphBase = Self.trimmed(graphBase)
    }

    /// The national cloud presets (graph-protocol: the national cloud deployments).
    public init(cloud: Cloud, authorityOverride: String? = nil, graphBaseOverride: String? = nil) {
        let preset: (String, String)
        switch cloud {
        case .global: preset = ("https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0")
        case .usgov: preset = ("https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0")
        case .usgovDoD: preset = ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0")
        case .china: preset = ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0")
        }
        self.init(authority: authorityOverride ?? preset.0, graphBase: graphBaseOverride ?? preset.1)
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    public func tokenURL(tenant: String) -> String { "\(authority)/\(tenant)/oauth2/v2.0/token" }

    /// `{authority}/{tenant}/oauth2/v2.0/devicecode`.
    public func deviceCodeURL(tenant: String) -> String { "\(authority)/\(tenant)/oauth2/v2.0/devicecode" }

    /// The app-only scope: the Graph origin + `/.default`.
    public var defaultScope: String { "\(graphOrigin)/.default" }

    /// `https://graph.microsoft.com` from `https://graph.microsoft.com/v1.0`.
    public var graphOrigin: String {
        guard let schemeEnd = graphBase.range(of: "://") else { return graphBase }
        let rest = graphBase[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return graphBase }
        return String(graphBase[..<slash])
    }

    private static func trimmed(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}
