public import BridgeConfig
import BridgeCore
public import BridgeSettings
import BridgeServer
import Foundation
import Logging

/// What `check` verifies beyond the YAML: the key and certificate files that `run` would load
/// (`server.tls`, `graph.certificate`, each subscription's `encryption:`), so a bad file is found
/// before a restart; and key files that others can read.
public enum FileChecks {
    /// One positioned error per unusable file; empty when all load.
    public static func problems(in configuration: BridgeConfiguration) -> [ConfigError] {
        var problems: [ConfigError] = []
        func problem(_ path: ConfigPath, _ message: String) {
            problems.append(ConfigError(file: configuration.file, mark: path.mark, message: message))
        }
        if let files = configuration.server.tls {
            do {
                _ = try ServerTLS(certificatePath: files.certificate.path, keyPath: files.key.path, logger: Logger(label: "check"))
            } catch {
                problem(files.certificate, "server.tls: \(error)")
            }
        }
        if let certificate = configuration.graph?.certificate {
            do {
                _ = try GraphSetup.assertion(certificate)
            } catch {
                problem(certificate.certificate, "graph.certificate: \(error)")
            }
        }
        let before = problems.count
        for declaration in configuration.subscriptions {
            guard let encryption = declaration.encryption else { continue }
            for (index, pair) in encryption.keyPairs.enumerated() {
                do {
                    _ = try RichNotificationSetup.key(pair)
                } catch {
                    let which = index == 0 ? "encryption:" : "encryption: previous key '\(pair.id)':"
                    problem(pair.certificate, "subscription '\(declaration.name)': \(which) \(error)")
                }
            }
        }
        if problems.count == before {
            // Across subscriptions (one id, one certificate): only once each key pair loads.
            do {
                _ = try RichNotificationSetup.keys(configuration)
            } catch {
                problems.append(ConfigError(file: configuration.file, mark: nil, message: "\(error)"))
            }
        }
        return problems
    }

    /// Private keys that the group or others may read: a warning (`check` still passes), since the
    /// file works, but whoever else can read it can sign in as the app or decrypt its notifications.
    public static func warnings(in configuration: BridgeConfiguration) -> [ConfigError] {
        var keys: [(key: String, path: ConfigPath)] = []
        if let tls = configuration.server.tls { keys.append(("server.tls.key", tls.key)) }
        if let certificate = configuration.graph?.certificate { keys.append(("graph.certificate.key", certificate.key)) }
        for declaration in configuration.subscriptions {
            if let encryption = declaration.encryption { keys.append(("subscription '\(declaration.name)': encryption.key", encryption.key)) }
            for pair in declaration.encryption?.previous ?? [] {
                keys.append(("subscription '\(declaration.name)': encryption.previous '\(pair.id)' key", pair.key))
            }
        }
        return keys.compactMap { entry in
            // The mode of the file itself, not of a symbolic link to it (mounted secrets are links).
            let file = URL(fileURLWithPath: entry.path.path).resolvingSymlinksInPath().path
            guard let permissions = try? FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            else { return nil }
            let mode = permissions & 0o777
            guard mode & 0o077 != 0 else { return nil }
            return ConfigError(
                file: configuration.file, mark: entry.path.mark,
                message: "warning: \(entry.key) \(entry.path.path) is readable by \(mode & 0o007 != 0 ? "others" : "its group") (mode \(String(mode, radix: 8))): chmod 600 it")
        }
    }
}
