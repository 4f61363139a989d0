import Foundation
import NIOCore
import ServiceLifecycle

/// Runs one HTTP listener in the service group and turns a failure to open it into a
/// ``StartupError`` that names the address and says what to do, e.g. `127.0.0.1:8080 is in use`.
///
/// The service group cancels every other service when this one throws, so a listener that cannot
/// start ends the process (exit 1) instead of leaving the rest of the bridge running without it.
struct ListenerService: Service {
    /// The configuration key the address comes from (`server.listen`), for the message.
    let key: String
    let host: String
    let port: Int
    let service: any Service

    func run() async throws {
        do {
            try await service.run()
        } catch let error as IOError {
            throw StartupError(Self.explain(errno: error.errnoCode, key: key, host: host, port: port) ?? "\(key) \(address): \(error)")
        } catch let error as CancellationError {
            throw error
        } catch let error as StartupError {
            throw error
        } catch {
            throw StartupError("\(key) \(address): cannot listen: \(error)")
        }
    }

    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The message for the errors `bind` gives; nil for others.
    static func explain(errno code: Int32, key: String, host: String, port: Int) -> String? {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        switch code {
        case EADDRINUSE:
            return "\(address) is in use: another process listens there (an older graph-bridge still stopping?); free it or change \(key)"
        case EADDRNOTAVAIL:
            return "cannot listen on \(address): \(host) is not an address of this machine; use one of its addresses, 127.0.0.1 or 0.0.0.0 in \(key)"
        case EACCES:
            return "cannot listen on \(address): permission denied (ports below 1024 need CAP_NET_BIND_SERVICE); change \(key)"
        default:
            return nil
        }
    }
}
