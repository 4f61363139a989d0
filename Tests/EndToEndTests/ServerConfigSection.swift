/// The `server:` section of a test's bridge.yaml (unindented, ending in a newline), to stand between
/// `graphConfigSection(...)` and the rest: `graph + serverConfigSection(...) + """ state: ... """`.
///
/// - Parameters:
///   - listen: the public listener, `HOST:PORT`; the default lets the system pick the port (read it
///     back with `BridgeProcess.port()`).
///   - publicUrl: what Graph is told to call (managed subscriptions need it); nil leaves the key out.
///   - extra: further `server:` keys, one a line, unindented (`maxBodyBytes: 64KiB`).
///   - admin: the admin listener's value; the default, on a port the system picks (read back with
///     `BridgeProcess.adminPort()`), is what every bridge a test runs has.
func serverConfigSection(
    listen: String = "127.0.0.1:0", publicUrl: String? = nil, extra: [String] = [], admin: String = "{ listen: 127.0.0.1:0 }"
) -> String {
    let keys = ["listen: \(listen)"] + (publicUrl.map { ["publicUrl: \($0)"] } ?? []) + extra + ["admin: \(admin)"]
    return "server:\n" + keys.map { "  \($0)\n" }.joined()
}

/// The `server:` section of a bridge that listens on 127.0.0.1:`port` and tells Graph (the
/// simulator) to call it there. `publicUrl` needs the number before the bridge starts, so `port`
/// comes from `reservedLoopbackPort()`.
func serverConfigSection(publicPort port: Int, admin: String = "{ listen: 127.0.0.1:0 }") -> String {
    serverConfigSection(listen: "127.0.0.1:\(port)", publicUrl: "http://127.0.0.1:\(port)", admin: admin)
}
