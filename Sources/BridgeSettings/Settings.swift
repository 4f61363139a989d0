import BridgeCore
public import BridgeConfig
import Foundation

/// `graph:`: how the bridge signs in to Microsoft Graph.
public struct GraphSettings: Sendable, Decodable {
    public enum Cloud: String, Sendable, CaseIterable, ConfigEnum {
        case global
        case usgov
        case usgovDoD = "usgov-dod"
        case china
    }

    public struct CertificateCredential: Sendable, Decodable {
        public var certificate: ConfigPath
        public var key: ConfigPath
    }

    public var tenant: String
    public var clientId: String
    public var clientSecret: String?
    public var certificate: CertificateCredential?
    public var delegated: Bool
    public var cloud: Cloud
    public var authorityUrl: String?
    public var baseUrl: String?

    enum CodingKeys: String, CodingKey {
        case tenant, clientId, clientSecret, certificate, delegated, cloud, authorityUrl, baseUrl
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tenant = try container.decode(String.self, forKey: .tenant)
        clientId = try container.decode(String.self, forKey: .clientId)
        clientSecret = try container.decodeIfPresent(String.self, forKey: .clientSecret)
        certificate = try container.decodeIfPresent(CertificateCredential.self, forKey: .certificate)
        delegated = try container.decodeIfPresent(Bool.self, forKey: .delegated) ?? false
        cloud = try container.decodeIfPresent(Cloud.self, forKey: .cloud) ?? .global
        authorityUrl = try container.decodeIfPresent(SecureURL.self, forKey: .authorityUrl)?.url
        baseUrl = try container.decodeIfPresent(SecureURL.self, forKey: .baseUrl)?.url
        let ways = [clientSecret != nil, certificate != nil, delegated].filter { $0 }.count
        if ways != 1 {
            throw decoder.configError("graph needs exactly one of clientSecret, certificate or delegated: true")
        }
    }
}

/// `server:`: the public listener Graph calls, and the admin listener for operators.
public struct ServerSettings: Sendable, Decodable {
    /// PEM files: the certificate chain (leaf first) and its unencrypted private key.
    public struct TLS: Sendable, Decodable {
        public var certificate: ConfigPath
        public var key: ConfigPath

        enum CodingKeys: String, CodingKey { case certificate, key }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            certificate = try container.decode(ExistingFile.self, forKey: .certificate).path
            key = try container.decode(ExistingFile.self, forKey: .key).path
        }

        /// A path to a file that exists when the configuration is read (its content is checked at start).
        struct ExistingFile: Decodable {
            var path: ConfigPath
            init(from decoder: any Decoder) throws {
                path = try ConfigPath(from: decoder)
                var info = stat()
                guard stat(path.path, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR else {
                    throw decoder.configError("\(path.path) does not exist or is not a file")
                }
            }
        }
    }

    /// `server.admin:`: the second listener, for operators (status page, metrics, health,
    /// readiness). Never reachable through the public one.
    public struct Admin: Sendable, Decodable {
        /// Host part of `admin.listen`; loopback by default.
        public var host: String
        /// Port part of `admin.listen`; 0 lets the system pick one (tests).
        public var port: Int
        /// `admin.token`: the Bearer token every admin request must carry; required when `host`
        /// is not a loopback address.
        public var token: String?

        public static let `default` = Admin(host: "127.0.0.1", port: 9464, token: nil)

        public init(host: String, port: Int, token: String?) {
            self.host = host
            self.port = port
            self.token = token
        }

        enum CodingKeys: String, CodingKey { case listen, token }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let listen = try container.decodeIfPresent(ListenAddress.self, forKey: .listen)
            host = listen?.host ?? Self.default.host
            port = listen?.port ?? Self.default.port
            token = try container.decodeIfPresent(String.self, forKey: .token)
            if let token, token.isEmpty {
                throw try container.superDecoder(forKey: .token).configError("admin.token must not be empty (or leave the key out on a loopback address)")
            }
            if token == nil, !Self.isLoopback(host) {
                throw try container.superDecoder(forKey: .listen).configError(
                    "admin.listen \(host) is not a loopback address: set admin.token (a Bearer token, e.g. ${ADMIN_TOKEN}) so that only operators reach the status page and metrics")
            }
        }

        /// Whether `host` only accepts connections from this machine (`127.0.0.0/8`, `::1`, `localhost`).
        public static func isLoopback(_ host: String) -> Bool {
            let lowered = host.lowercased()
            if lowered == "localhost" || lowered == "::1" || lowered == "0:0:0:0:0:0:0:1" { return true }
            let octets = lowered.split(separator: ".", omittingEmptySubsequences: false)
            return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
        }
    }

    /// Host part of `listen` (`0.0.0.0`, `127.0.0.1`, `::`).
    public var host: String
    /// Port part of `listen`; 0 lets the system pick one (tests).
    public var port: Int
    public var publicUrl: String?
    public var tls: TLS?
    public var maxBodyBytes: Int
    /// A keep-alive connection with no request, or a request that stops sending, is closed after this.
    public var idleTimeout: Duration
    /// From its first byte, a request's headers and body must arrive within this.
    public var requestTimeout: Duration
    /// Connections served at once by the public listener; more wait in the listen backlog.
    public var maxConnections: Int
    public var admin: Admin

    public static let `default` = ServerSettings(host: "0.0.0.0", port: 8080, publicUrl: nil, tls: nil, maxBodyBytes: 1 << 20)

    init(host: String, port: Int, publicUrl: String?, tls: TLS?, maxBodyBytes: Int, idleTimeout: Duration = .seconds(30),
         requestTimeout: Duration = .seconds(30), maxConnections: Int = 1024, admin: Admin = .default) {
        self.host = host
        self.port = port
        self.publicUrl = publicUrl
        self.tls = tls
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
        self.admin = admin
    }

    enum CodingKeys: String, CodingKey { case listen, publicUrl, tls, maxBodyBytes, idleTimeout, requestTimeout, maxConnections, admin }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let listen = try container.decodeIfPresent(ListenAddress.self, forKey: .listen) {
            host = listen.host
            port = listen.port
        } else {
            host = Self.default.host
            port = Self.default.port
        }
        publicUrl = try container.decodeIfPresent(PublicURL.self, forKey: .publicUrl)?.url
        tls = try container.decodeIfPresent(TLS.self, forKey: .tls)
        maxBodyBytes = try container.decodeIfPresent(ConfigByteSize.self, forKey: .maxBodyBytes)?.bytes ?? Self.default.maxBodyBytes
        idleTimeout = try Self.positiveDuration(container, .idleTimeout) ?? Self.default.idleTimeout
        requestTimeout = try Self.positiveDuration(container, .requestTimeout) ?? Self.default.requestTimeout
        maxConnections = try container.decodeIfPresent(Int.self, forKey: .maxConnections) ?? Self.default.maxConnections
        if maxConnections < 1 {
            throw try container.superDecoder(forKey: .maxConnections).configError("server.maxConnections must be at least 1")
        }
        admin = try container.decodeIfPresent(Admin.self, forKey: .admin) ?? .default
        if admin.port != 0, admin.port == port, admin.host == host || admin.host == "0.0.0.0" || host == "0.0.0.0" {
            throw try container.superDecoder(forKey: container.contains(.admin) ? .admin : .listen).configError(
                "admin.listen (default 127.0.0.1:9464) must differ from server.listen (\(host):\(port)): the admin endpoints are never served on the public listener")
        }
    }

    /// A duration key that must be more than zero; nil when absent.
    private static func positiveDuration(_ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Duration? {
        guard let value = try container.decodeIfPresent(ConfigDuration.self, forKey: key) else { return nil }
        guard value.duration > .zero else {
            throw try container.superDecoder(forKey: key).configError("server.\(key.stringValue) must be more than 0")
        }
        return value.duration
    }

    struct ListenAddress: Decodable {
        var host: String
        var port: Int
        init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let colon = text.lastIndex(of: ":") else {
                throw decoder.configError("listen must be HOST:PORT, e.g. 0.0.0.0:8080 (found '\(text)')")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw decoder.configError("listen must be HOST:PORT with a port from 0 to 65535 (found '\(text)')")
            }
            self.host = host
            self.port = port
        }
    }

    struct PublicURL: Decodable {
        var url: String
        init(from decoder: any Decoder) throws {
            var text = try SecureURL(from: decoder).url
            while text.hasSuffix("/") { text.removeLast() }
            self.url = text
        }
    }
}

/// An `https://` URL, or `http://` to a loopback address (the Graph simulator, a local proxy):
/// anything else would send tokens, secrets or Graph's notifications in clear over a network.
struct SecureURL: Decodable {
    var url: String

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        let lowered = text.lowercased()
        if lowered.hasPrefix("https://") {
            url = text
        } else if lowered.hasPrefix("http://") {
            guard let host = URLComponents(string: text)?.host, Self.isLoopback(host) else {
                throw decoder.configError("'\(text)' uses http:// outside this machine: use https:// (http:// is only for loopback addresses such as 127.0.0.1, e.g. the Graph simulator)")
            }
            url = text
        } else {
            throw decoder.configError("'\(text)' is not an https:// URL")
        }
    }

    /// `localhost`, `127.0.0.0/8` and `::1`.
    static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// `state:`: where the journal, the delivery queue and the subscription records live.
public struct StateSettings: Sendable {
    /// Absolute path of the SQLite file (unused when `url` is set).
    public var path: String
    /// `state.url`: the PostgreSQL database that holds the state instead of the SQLite file.
    public var url: PostgresLocation?
    /// How long a fully delivered event stays in the store (for the status page and replays).
    public var retention: Duration
    /// Beyond this many waiting deliveries (and unrouted events), new notifications get 503.
    public var maxQueuedDeliveries: Int
    /// `state.lease`: how long this process (replica) counts as alive after its last renewal. A
    /// replica renews every third of it; one that died without stopping keeps its claimed
    /// deliveries and unrouted events this long before another replica (or the next start) takes them.
    public var lease: Duration

    public static let defaultMaxQueuedDeliveries = 1_000_000
    public static let defaultLease: Duration = .seconds(30)
    /// The shortest `state.lease`: a renewal every second, so a slow store write does not lapse it.
    public static let minimumLease: Duration = .seconds(3)

    public init(
        path: String, url: PostgresLocation? = nil, retention: Duration = .seconds(3600), maxQueuedDeliveries: Int = defaultMaxQueuedDeliveries,
        lease: Duration = defaultLease
    ) {
        self.path = path
        self.url = url
        self.retention = retention
        self.maxQueuedDeliveries = maxQueuedDeliveries
        self.lease = lease
    }

    /// The settings `keys` (the `state:` section as written, nil when absent) give, with the
    /// defaults for what they leave out; `directory` is the configuration file's folder.
    init(keys: Keys?, directory: String) {
        self.init(
            path: keys?.path?.path ?? directory + "/bridge-state.sqlite",
            url: keys?.url,
            retention: keys?.retention?.duration ?? .seconds(3600),
            maxQueuedDeliveries: keys?.maxQueuedDeliveries ?? Self.defaultMaxQueuedDeliveries,
            lease: keys?.lease?.duration ?? Self.defaultLease
        )
    }

    /// The keys as written; the loader supplies the default path next to the config file.
    struct Keys: Decodable {
        var path: ConfigPath?
        var url: PostgresLocation?
        var retention: ConfigDuration?
        var maxQueuedDeliveries: Int?
        var lease: ConfigDuration?

        enum CodingKeys: String, CodingKey { case path, url, retention, maxQueuedDeliveries, lease }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            path = try container.decodeIfPresent(ConfigPath.self, forKey: .path)
            if let text = try container.decodeIfPresent(String.self, forKey: .url) {
                do {
                    url = try PostgresLocation.parse(text)
                } catch {
                    throw try container.superDecoder(forKey: .url).configError(error.description)
                }
                if path != nil {
                    throw try container.superDecoder(forKey: .url).configError("state.url and state.path are alternatives (PostgreSQL or the SQLite file): give one of them")
                }
            }
            retention = try container.decodeIfPresent(ConfigDuration.self, forKey: .retention)
            maxQueuedDeliveries = try container.decodeIfPresent(Int.self, forKey: .maxQueuedDeliveries)
            if let maxQueuedDeliveries, maxQueuedDeliveries < 1 {
                throw decoder.configError("state.maxQueuedDeliveries must be at least 1")
            }
            lease = try container.decodeIfPresent(ConfigDuration.self, forKey: .lease)
            if let lease, lease.duration < StateSettings.minimumLease {
                throw try container.superDecoder(forKey: .lease).configError("state.lease must be at least \(ConfigDuration(StateSettings.minimumLease)) (it is renewed every third of it)")
            }
        }
    }
}

extension RetryPolicy {
    /// Whether the values make sense together; the message says what is wrong.
    var problem: String? {
        guard initialBackoff > .zero else { return "retry: initialBackoff must be more than 0" }
        guard maxBackoff >= initialBackoff else { return "retry: maxBackoff must not be less than initialBackoff" }
        guard maxAge > .zero else { return "retry: maxAge must be more than 0" }
        return nil
    }
}
