/// The events handed to the plugin (or waiting for one) and who waits for each answer.
///
/// Pure bookkeeping, no I/O: the supervisor keeps one behind a lock and turns what these methods
/// return into resumed continuations and written lines. Entries are keyed by event id because
/// answers are; a second delivery of an id already in the table joins the first (the line is
/// written once and its one answer settles both), so the plugin never sees an id twice at once.
struct DeliveryTable {
    typealias Token = UInt64

    struct Entry {
        var line: [UInt8]
        /// Deliveries waiting for this id's answer, in arrival order.
        var waiters: [Token]
        /// The child the line was handed to; nil while no child runs.
        var generation: Int?
    }

    private(set) var entries: [String: Entry] = [:]
    private var idOfToken: [Token: String] = [:]

    var waiterCount: Int { idOfToken.count }

    enum Registration: Equatable {
        /// Hand the line to the running child `generation`.
        case send(generation: Int)
        /// No child runs: the line waits for one.
        case waitForChild
        /// The id is already in the table; this delivery shares its answer.
        case joined(sent: Bool)
    }

    mutating func register(_ token: Token, id: String, line: [UInt8], runningGeneration: Int?) -> Registration {
        idOfToken[token] = id
        if entries[id] != nil {
            entries[id]!.waiters.append(token)
            return .joined(sent: entries[id]!.generation != nil)
        }
        entries[id] = Entry(line: line, waiters: [token], generation: runningGeneration)
        if let runningGeneration { return .send(generation: runningGeneration) }
        return .waitForChild
    }

    /// A child started: every waiting line goes to it, oldest first is not promised (ids are unordered).
    mutating func childStarted(generation: Int) -> [(id: String, line: [UInt8])] {
        var lines: [(id: String, line: [UInt8])] = []
        for (id, entry) in entries where entry.generation == nil {
            entries[id]!.generation = generation
            lines.append((id, entry.line))
        }
        return lines
    }

    /// An answer from child `generation`: the waiters it settles, or nil when no delivery waits for
    /// that id from that child (unknown, already timed out, or never sent to it).
    mutating func answer(id: String, generation: Int) -> [Token]? {
        guard let entry = entries[id], entry.generation == generation else { return nil }
        entries[id] = nil
        for token in entry.waiters { idOfToken[token] = nil }
        return entry.waiters
    }

    /// Child `generation` is gone: the waiters of every line it was given, which will get no answer.
    mutating func childExited(generation: Int) -> [Token] {
        var tokens: [Token] = []
        for (id, entry) in entries where entry.generation == generation {
            entries[id] = nil
            for token in entry.waiters {
                idOfToken[token] = nil
                tokens.append(token)
            }
        }
        return tokens
    }

    struct Removal: Equatable {
        var id: String
        /// The child the line was given to, if any.
        var generation: Int?
        /// True when no one else waits for the id: its line may be withdrawn from the write queue.
        var entryRemoved: Bool
    }

    /// One delivery gives up (timeout, cancellation). Nil when it was already settled.
    mutating func remove(_ token: Token) -> Removal? {
        guard let id = idOfToken.removeValue(forKey: token), var entry = entries[id] else { return nil }
        entry.waiters.removeAll { $0 == token }
        let removed = entry.waiters.isEmpty
        entries[id] = removed ? nil : entry
        return Removal(id: id, generation: entry.generation, entryRemoved: removed)
    }

    /// Like ``remove(_:)`` but only while the line still waits for a child (the start wait ran out).
    mutating func removeIfUnsent(_ token: Token) -> Bool {
        guard let id = idOfToken[token], entries[id]?.generation == nil else { return false }
        return remove(token) != nil
    }

    /// Everything, for shutdown.
    mutating func removeAll() -> [Token] {
        let tokens = Array(idOfToken.keys)
        entries = [:]
        idOfToken = [:]
        return tokens
    }
}
