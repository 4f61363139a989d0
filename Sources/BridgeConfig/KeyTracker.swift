import Synchronization

/// Which mapping keys any decode asked for, per mapping node, so that the rest can be reported
/// as unknown once all decoding is done.
///
/// One tracker belongs to one parsed `ConfigDocument` and is shared by every `ConfigDecoder` over
/// it, so a key read by one decode (the core reading a sink's `type`) counts as known for the
/// others (the sink reading its own keys). Mappings are identified by their start mark, which no
/// two mapping nodes share; an aliased mapping is one node wherever it is used.
final class KeyTracker: Sendable {
    private struct MappingRecord {
        var keys: [(key: String, mark: ConfigMark)]
        var path: String
        var asked: [String] = []
        var askedSet: Set<String> = []
    }

    private struct NodeID: Hashable {
        var isMapping: Bool
        var mark: ConfigMark
    }

    private struct State {
        var mappings: [ConfigMark: MappingRecord] = [:]
        var order: [ConfigMark] = []
        var paths: [NodeID: [PathKey]] = [:]
        var abandoned: Set<ConfigMark> = []
    }

    private let state = Mutex(State())

    /// Notes that a keyed container was opened on this mapping: its keys now need to be asked for.
    func openMapping(_ node: ConfigNode, path: [PathKey]) {
        guard case .mapping(let entries, let mark) = node else { return }
        state.withLock { state in
            guard state.mappings[mark] == nil else { return }
            state.mappings[mark] = MappingRecord(keys: entries.map { ($0.key, $0.keyMark) }, path: PathKey.render(path))
            state.order.append(mark)
        }
    }

    /// Notes that `key` was asked for in the mapping at `mark` (present or not).
    func ask(_ key: String, inMappingAt mark: ConfigMark) {
        state.withLock { state in
            guard state.mappings[mark]?.askedSet.insert(key).inserted == true else { return }
            state.mappings[mark]?.asked.append(key)
        }
    }

    /// Notes that decoding `node` threw part-way: keys in it and below it that were never reached
    /// are reported only when they look like a typo of a known key (others would only echo the
    /// real error).
    func abandon(_ node: ConfigNode) {
        var marks: [ConfigMark] = []
        func collect(_ node: ConfigNode, depth: Int) {
            guard depth < 256 else { return }
            switch node {
            case .scalar: return
            case .sequence(let items, _): for item in items { collect(item, depth: depth + 1) }
            case .mapping(let entries, let mark):
                marks.append(mark)
                for entry in entries { collect(entry.value, depth: depth + 1) }
            }
        }
        collect(node, depth: 0)
        state.withLock { $0.abandoned.formUnion(marks) }
    }

    /// Remembers where a container node was first met, so a later decode of it can name its path.
    func remember(_ node: ConfigNode, path: [PathKey]) {
        let id: NodeID
        switch node {
        case .scalar: return
        case .sequence(_, let mark): id = NodeID(isMapping: false, mark: mark)
        case .mapping(_, let mark): id = NodeID(isMapping: true, mark: mark)
        }
        state.withLock { state in
            if state.paths[id] == nil { state.paths[id] = path }
        }
    }

    /// The path a container node was first met at, if it was.
    func path(of node: ConfigNode) -> [PathKey]? {
        let id: NodeID
        switch node {
        case .scalar: return nil
        case .sequence(_, let mark): id = NodeID(isMapping: false, mark: mark)
        case .mapping(_, let mark): id = NodeID(isMapping: true, mark: mark)
        }
        return state.withLock { $0.paths[id] }
    }

    /// Every key of an opened mapping that nothing asked for, in file order.
    func unknownKeyErrors(file: String) -> [ConfigError] {
        let errors = state.withLock { state in
            state.order.flatMap { mark -> [ConfigError] in
                guard let record = state.mappings[mark] else { return [] }
                let abandoned = state.abandoned.contains(mark)
                let present = Set(record.keys.map(\.key))
                let candidates = record.asked.filter { !present.contains($0) }
                return record.keys.filter { !record.askedSet.contains($0.key) }.compactMap { key, mark in
                    let suggestion = Self.suggestion(for: key, among: candidates)
                    // Where decoding stopped part-way, only likely typos are worth a line.
                    if abandoned && suggestion == nil { return nil }
                    var message = "unknown key '\(key)'"
                    if !record.path.isEmpty { message += " in \(record.path)" }
                    if let suggestion { message += " (did you mean '\(suggestion)'?)" }
                    return ConfigError(file: file, mark: mark, message: message)
                }
            }
        }
        return ConfigErrors(errors).errors
    }

    /// The closest candidate: equal ignoring case, or else within edit distance 2 (and closer
    /// than the candidate's own length, so `id` is not offered for `to`).
    static func suggestion(for key: String, among candidates: [String]) -> String? {
        let lowered = key.lowercased()
        if let match = candidates.first(where: { $0.lowercased() == lowered }) { return match }
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, candidate.lowercased())
            if distance <= 2, distance < candidate.count, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// A coding key the config decoder builds paths from; `isIndex` marks a list position.
struct PathKey: CodingKey, Sendable, Hashable {
    var stringValue: String
    var intValue: Int?
    var isIndex = false

    init(stringValue: String) {
        self.stringValue = stringValue
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }

    static func index(_ index: Int) -> PathKey {
        var key = PathKey(intValue: index)
        key.isIndex = true
        return key
    }

    init(_ key: any CodingKey) {
        if let key = key as? PathKey {
            self = key
        } else {
            self.stringValue = key.stringValue
            self.intValue = key.intValue
        }
    }

    /// `sinks.chat`, `routes[2].match`; empty for the top level.
    static func render(_ path: [PathKey]) -> String {
        var text = ""
        for key in path {
            if key.isIndex {
                text += "[\(key.intValue ?? 0)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text
    }

    static func render(_ path: [any CodingKey]) -> String {
        render(path.map(PathKey.init))
    }
}
