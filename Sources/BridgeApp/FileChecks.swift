import BridgeConfig
public import BridgeCore
import BridgeServer
import Logging

/// What `check` verifies beyond the YAML: the key and certificate files that `run` would load
/// (`server.tls`, each subscription's `encryption:`), so a bad file is found before a restart.
public enum FileChecks {
    /// One message per unusable file; empty when all load.
    public static func problems(in configuration: BridgeConfiguration) -> [String] {
        var problems: [String] = []
        if let files = configuration.server.tls {
            do {
                _ = try ServerTLS(certificatePath: files.certificate.path, keyPath: files.key.path, logger: Logger(label: "check"))
            } catch {
                problems.append("server.tls: \(error)")
            }
        }
        do {
            _ = try RichNotificationSetup.keys(configuration)
        } catch {
            problems.append("\(error)")
        }
        return problems
    }
}
