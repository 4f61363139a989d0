/// Errors of the state store that are not SQLite's own.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case cannotCreate(String, String)
        case internalInconsistency(String)
        case corruptRecord(String)
        case inUse(String)
    }

    private let code: Code

    static func cannotCreate(_ path: String, reason: String) -> StoreError { StoreError(code: .cannotCreate(path, reason)) }
    static func internalInconsistency(_ what: String) -> StoreError { StoreError(code: .internalInconsistency(what)) }
    static func corruptRecord(_ what: String) -> StoreError { StoreError(code: .corruptRecord(what)) }
    static func inUse(_ path: String) -> StoreError { StoreError(code: .inUse(path)) }

    public var description: String {
        switch code {
        case .cannotCreate(let path, let reason): return "cannot create the state store at \(path): \(reason)"
        case .internalInconsistency(let what): return "internal error in the state store: \(what)"
        case .corruptRecord(let what): return "a stored record is unreadable: \(what)"
        case .inUse(let path):
            return "another graph-bridge is already running on the state file \(path) (it holds the file's lock): stop it first, or give this one a state.path of its own"
        }
    }
}
