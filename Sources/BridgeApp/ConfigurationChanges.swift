import BridgeConfig

/// What a reload changes, from the YAML trees of the running file and the new one (positions,
/// comments and formatting ignored; `${VAR}` compared as written, since a process's environment
/// does not change while it runs). A value: tested without I/O.
struct ConfigurationChanges: Sendable, Equatable {
    var sinksAdded: [String] = []
    var sinksChanged: [String] = []
    var sinksRemoved: [String] = []
    var subscriptionsAdded: [String] = []
    var subscriptionsChanged: [String] = []
    var subscriptionsRemoved: [String] = []
    var routesChanged = false
    /// The top-level `retry:` (every sink's default).
    var retryChanged = false
    var graphChanged = false
    var publicURLChanged = false

    init(from old: ConfigNode, to new: ConfigNode) {
        (sinksAdded, sinksChanged, sinksRemoved) = Self.compare(Self.sinks(old), Self.sinks(new))
        (subscriptionsAdded, subscriptionsChanged, subscriptionsRemoved) = Self.compare(Self.subscriptions(old), Self.subscriptions(new))
        routesChanged = Self.fingerprint(old["routes"]) != Self.fingerprint(new["routes"])
        retryChanged = Self.fingerprint(old["retry"]) != Self.fingerprint(new["retry"])
        graphChanged = Self.fingerprint(old["graph"]) != Self.fingerprint(new["graph"])
        publicURLChanged = Self.fingerprint(old["server"]?["publicUrl"]) != Self.fingerprint(new["server"]?["publicUrl"])
    }

    /// Nothing that a reload applies changed.
    var isEmpty: Bool { summary.isEmpty }

    /// The changes as log metadata values, e.g. `["bridge.sinks_added": "chat", "bridge.routes": "changed"]`.
    var summary: [(key: String, value: String)] {
        var parts: [(key: String, value: String)] = []
        func list(_ key: String, _ names: [String]) {
            if !names.isEmpty { parts.append((key, names.joined(separator: ","))) }
        }
        list("bridge.sinks_added", sinksAdded)
        list("bridge.sinks_changed", sinksChanged)
        list("bridge.sinks_removed", sinksRemoved)
        list("bridge.subscriptions_added", subscriptionsAdded)
        list("bridge.subscriptions_changed", subscriptionsChanged)
        list("bridge.subscriptions_removed", subscriptionsRemoved)
        if routesChanged { parts.append(("bridge.routes", "changed")) }
        if retryChanged { parts.append(("bridge.retry", "changed")) }
        if graphChanged { parts.append(("bridge.graph", "changed")) }
        if publicURLChanged { parts.append(("bridge.public_url", "changed")) }
        return parts
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.summary.map { "\($0.key)=\($0.value)" } == rhs.summary.map { "\($0.key)=\($0.value)" }
    }

    /// The keys whose value differs between the file the bridge started with and `new`, and that
    /// only a restart applies: every `server:` key but `publicUrl` (listeners, TLS, limits, admin)
    /// and every `state:` key. Named like `server.listen`, `server.admin.listen`, `state.path`.
    static func restartOnlyKeys(started old: ConfigNode, new: ConfigNode) -> [String] {
        var keys: [String] = []
        func compare(_ prefix: String, _ a: ConfigNode?, _ b: ConfigNode?, skipping skipped: Set<String> = [], descendInto: Set<String> = []) {
            let names = orderedKeys(a, b)
            if names.isEmpty {
                if fingerprint(a) != fingerprint(b) { keys.append(prefix) }
                return
            }
            for name in names where !skipped.contains(name) {
                if descendInto.contains(name) {
                    compare("\(prefix).\(name)", a?[name], b?[name])
                } else if fingerprint(a?[name]) != fingerprint(b?[name]) {
                    keys.append("\(prefix).\(name)")
                }
            }
        }
        compare("server", old["server"], new["server"], skipping: ["publicUrl"], descendInto: ["admin"])
        compare("state", old["state"], new["state"])
        return keys
    }

    /// The keys of two mappings, the first's order first; empty when neither is a mapping.
    private static func orderedKeys(_ a: ConfigNode?, _ b: ConfigNode?) -> [String] {
        var names = a?.keys ?? []
        for name in b?.keys ?? [] where !names.contains(name) { names.append(name) }
        return names
    }

    /// Names added, changed and removed between two name-to-fingerprint lists (in file order).
    private static func compare(_ old: [(String, String)], _ new: [(String, String)]) -> ([String], [String], [String]) {
        let before = Dictionary(old, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new, uniquingKeysWith: { first, _ in first })
        let added = new.map(\.0).filter { before[$0] == nil }
        let changed = new.map(\.0).filter { before[$0] != nil && before[$0] != after[$0] }
        let removed = old.map(\.0).filter { after[$0] == nil }
        return (added, changed, removed)
    }

    private static func sinks(_ root: ConfigNode) -> [(String, String)] {
        guard case .mapping(let pairs, _)? = root["sinks"] else { return [] }
        return pairs.map { ($0.key, fingerprint($0.value)) }
    }

    private static func subscriptions(_ root: ConfigNode) -> [(String, String)] {
        (root["subscriptions"]?.items ?? []).compactMap { item in
            item["name"]?.scalarText.map { ($0, fingerprint(item)) }
        }
    }

    /// A node's content as one string, positions left out: equal exactly when the YAML says the same.
    static func fingerprint(_ node: ConfigNode?) -> String {
        guard let node else { return "-" }
        var text = ""
        append(node, to: &text)
        return text
    }

    private static func append(_ node: ConfigNode, to text: inout String) {
        switch node {
        case .scalar(let value, let quoted, _):
            text += node.isNull ? "~" : (quoted ? "\"" : "'") + "\(value.utf8.count):" + value
        case .sequence(let items, _):
            text += "[\(items.count)"
            for item in items { append(item, to: &text) }
            text += "]"
        case .mapping(let pairs, _):
            text += "{\(pairs.count)"
            for pair in pairs {
                text += "\(pair.key.utf8.count):" + pair.key
                append(pair.value, to: &text)
            }
            text += "}"
        }
    }
}
