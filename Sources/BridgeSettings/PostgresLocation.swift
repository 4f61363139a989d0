import BridgeCore
import Foundation

/// Where a PostgreSQL state store lives: `state.url`, parsed
/// (`postgres://user:password@host:port/database?sslmode=...&sslrootcert=...`).
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    /// How the connection uses TLS (`sslmode`).
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        /// No TLS.
        case disable
        /// TLS, without checking the server's certificate.
        case require
        /// TLS, the certificate checked against `sslrootcert` (or the system's roots) and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    /// Never logged or shown: `description` leaves it out.
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// The CA certificate file (PEM) that signs the server's certificate, for `verify-full`.
    public var rootCertificatePath: String?
    /// The folder of the server's Unix socket (`?host=/path`, as libpq takes it): then the
    /// connection goes to `<folder>/.s.PGSQL.<port>` and `host` is not used.
    public var socketDirectory: String?

    /// The socket file, when connecting over a Unix socket.
    public var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

    public init(host: String, port: Int = 5432, user: String, password: String?, database: String, tls: TLSMode = .disable, rootCertificatePath: String? = nil, socketDirectory: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.rootCertificatePath = rootCertificatePath
        self.socketDirectory = socketDirectory
    }

    /// The URL without its password, for messages and logs.
    public var description: String {
        if let socketPath { return "postgres://\(user)@\(socketPath)/\(database)" }
        return "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }

    /// Parses `text`; the error is a message for the configuration's `FILE:LINE:COL:` prefix.
    public static func parse(_ text: String) throws(PostgresLocationError) -> PostgresLocation {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw PostgresLocationError("is not a URL (expected postgres://user:password@host:port/database?sslmode=require)")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw PostgresLocationError("has the scheme \(scheme):, expected postgres: or postgresql:")
        }
        let host = components.host ?? ""
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw PostgresLocationError("names no database (expected postgres://user:password@host:port/database)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresLocationError("names no user (expected postgres://user:password@host:port/database)")
        }
        var tls = TLSMode.require
        var tlsGiven = false
        var rootCertificate: String?
        var socketDirectory: String?
        var port = components.port ?? 5432
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value) else {
                    throw PostgresLocationError("has sslmode=\(item.value ?? ""), expected one of disable, require, verify-full")
                }
                tls = mode
                tlsGiven = true
            case "host":
                guard let value = item.value, value.hasPrefix("/") else {
                    throw PostgresLocationError("has host=\(item.value ?? ""), expected the absolute path of the server's socket folder")
                }
                socketDirectory = value
            case "port":
                guard let value = item.value, let number = Int(value), (1...65535).contains(number) else {
                    throw PostgresLocationError("has port=\(item.value ?? ""), expected a number from 1 to 65535")
                }
                port = number
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else { throw PostgresLocationError("has an empty sslrootcert") }
                guard value.hasPrefix("/") else { throw PostgresLocationError("has sslrootcert=\(value), expected an absolute path") }
                rootCertificate = value
            default:
                throw PostgresLocationError("has the parameter \(item.name), expected only sslmode, sslrootcert, host and port")
            }
        }
        if let rootCertificate {
            guard tls == .verifyFull else {
                throw PostgresLocationError("has sslrootcert without sslmode=verify-full (the CA file is only used to verify the server)")
            }
            guard FileManager.default.isReadableFile(atPath: rootCertificate) else {
                throw PostgresLocationError("has sslrootcert=\(rootCertificate), which is not a readable file")
            }
        }
        guard !host.isEmpty || socketDirectory != nil else {
            throw PostgresLocationError("names no host (expected postgres://user:password@host:port/database)")
        }
        if socketDirectory != nil {
            // PostgreSQL offers no TLS on its Unix socket.
            guard !tlsGiven || tls == .disable else {
                throw PostgresLocationError("connects over the Unix socket in \(socketDirectory!), where PostgreSQL offers no TLS: use sslmode=disable there")
            }
            tls = .disable
        }
        return PostgresLocation(
            host: host, port: port, user: user, password: components.password, database: database,
            tls: tls, rootCertificatePath: rootCertificate, socketDirectory: socketDirectory)
    }
}

/// Why a `state.url` is refused.
public struct PostgresLocationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    init(_ message: String) { description = "state.url " + message }
}
