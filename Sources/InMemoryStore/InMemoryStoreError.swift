/// What the in-memory store refuses: what the SQLite store's constraints refuse.
public struct InMemoryStoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case duplicateEventID(String)
        case unknownEvent(Int64)
        case corruptRecord(String)
    }

    private let code: Code

    /// An event id the store already holds (ids are unique, as the SQLite store's `UNIQUE` column makes them).
    static func duplicateEventID(_ id: String) -> InMemoryStoreError { InMemoryStoreError(code: .duplicateEventID(id)) }
    /// A delivery for an event the store does not hold (the SQLite store's foreign key).
    static func unknownEvent(_ sequence: Int64) -> InMemoryStoreError { InMemoryStoreError(code: .unknownEvent(sequence)) }
    static func corruptRecord(_ what: String) -> InMemoryStoreError { InMemoryStoreError(code: .corruptRecord(what)) }

    public var description: String {
        switch code {
        case .duplicateEventID(let id): return "the journal already holds an event with id \(id)"
        case .unknownEvent(let sequence): return "no event with sequence number \(sequence) to deliver"
        case .corruptRecord(let what): return "a stored record is unreadable: \(what)"
        }
    }
}
