import Foundation
#if canImport(SwiftOverlayShims)
    // `stat`'s `timespec` comes from here once NIOHTTP1 is in the module (MemberImportVisibility).
    import SwiftOverlayShims
#endif
public import Logging
import NIOCore
public import NIOSSL
import Synchronization

/// `server.tls`: the listener's certificate and key, served with TLS 1.2 or later.
///
/// Certificates are renewed every few weeks (ACME) and the bridge runs for months, so the files
/// are read again when they change: every handshake compares their modification times with the
/// loaded ones (two `stat` calls, far cheaper than the handshake) and a new pair is used from the
/// next connection on. A pair that does not load (say, the key written before the certificate)
/// is logged and the old pair stays in use until the files are consistent again.
public final class ServerTLS: Sendable {
    /// A certificate chain and the key that goes with it.
    struct Material: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var stamp: Stamp
    }

    /// What tells a changed pair of files from an unchanged one: modification time, inode and size
    /// of each (an atomic rename or `cp -p` keeps the time but not the inode).
    struct Stamp: Equatable, Sendable {
        var values: [Int]
    }

    public let certificatePath: String
    public let keyPath: String
    private let logger: Logger
    private let current: Mutex<Material>

    /// Loads the pair now: a missing or unreadable file, or a key that does not match, stops the start with a clear message.
    public init(certificatePath: String, keyPath: String, logger: Logger) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.logger = logger
        current = Mutex(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The NIOSSL server configuration: TLS 1.2 minimum, the loaded pair, reloaded when the files change.
    public func configuration() -> TLSConfiguration {
        let material = current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: material.chain.map { .certificate($0) },
            privateKey: .privateKey(material.key)
        )
        configuration.minimumTLSVersion = .tlsv12
        // An idle client seldom answers close_notify; NIOSSL's default 5 s wait per connection
        // would eat half of the 10 s a SIGTERM gets.
        configuration.shutdownTimeout = .milliseconds(500)
        configuration.sslContextCallback = { [self] _, promise in
            let material = currentMaterial()
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = material.chain.map { .certificate($0) }
            override.privateKey = .privateKey(material.key)
            promise.succeed(override)
        }
        return configuration
    }

    /// The pair to use for a new handshake: reloaded first when the files changed since the last load.
    func currentMaterial() -> Material {
        let loaded = current.withLock { $0 }
        guard let stamp = try? Self.stamp(certificatePath: certificatePath, keyPath: keyPath), stamp != loaded.stamp else {
            return loaded
        }
        do {
            let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
            current.withLock { $0 = fresh }
            logger.notice("loaded a renewed TLS certificate", metadata: ["bridge.certificate": "\(certificatePath)"])
            return fresh
        } catch {
            // Remember the stamp so a broken pair is reported once, not on every handshake.
            current.withLock { $0.stamp = stamp }
            logger.error("the changed TLS certificate or key does not load; still serving the previous one",
                         metadata: ["bridge.certificate": "\(certificatePath)", "error": "\(error)"])
            return loaded
        }
    }

    static func load(certificatePath: String, keyPath: String) throws -> Material {
        let stamp = try stamp(certificatePath: certificatePath, keyPath: keyPath)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw TLSFileError("\(certificatePath): not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw TLSFileError("\(certificatePath): no certificate in the file") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw TLSFileError("\(keyPath): not a PEM private key, or one protected by a passphrase (\(error))")
        }
        // NIOSSL only finds a mismatch at the first handshake; find it now.
        do {
            var probe = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            probe.minimumTLSVersion = .tlsv12
            _ = try NIOSSLContext(configuration: probe)
        } catch {
            throw TLSFileError("\(keyPath) is not the key of the certificate in \(certificatePath) (\(error))")
        }
        return Material(chain: chain, key: key, stamp: stamp)
    }

    static func stamp(certificatePath: String, keyPath: String) throws -> Stamp {
        Stamp(values: try fileIdentity(certificatePath) + fileIdentity(keyPath))
    }

    static func fileIdentity(_ path: String) throws -> [Int] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw TLSFileError("\(path): \(String(cString: strerror(errno)))")
        }
        return [info.st_mtim.tv_sec, info.st_mtim.tv_nsec, Int(info.st_ino), Int(info.st_size)]
    }
}

/// A `server.tls` file that cannot be used, with the file named first.
public struct TLSFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
