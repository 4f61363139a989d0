/// Errors of the state store that are not SQLite's own.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case cannotCreate(String, String)
        case internalInconsistency(String)
        case corruptRecord(String)
    }

    private let code: Code

    static func cannotCreate(_ path: String, reason: String) -> StoreError { StoreError(code: .cannotCreate(path, reason)) }
    static func internalInconsistency(_ what: String) -> StoreError { StoreError(code: .internalInconsistency(what)) }
    static func corruptRecord(_ what: String) -> StoreError { StoreError(code: .corruptRecord(what)) }

    public var description: String {
        switch code {
        case .cannotCreate(let path, let reason): return "cannot create the state store at \(path): \(reason)"
        case .internalInconsistency(let what): return "internal error in the state store: \(what)"
        case .corruptRecord(let what): return "a stored record is unreadable: \(what)"
        }
    }
}
