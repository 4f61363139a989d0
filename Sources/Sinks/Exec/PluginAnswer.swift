import SinkAPI

/// One line a plugin wrote on stdout: `{"id": "...", "status": "ok" | "retry" | "drop", "error": "..."}`.
struct PluginAnswer: Equatable, Sendable {
    enum Status: Equatable, Sendable {
        case ok
        case retry
        case drop
        /// A status the protocol does not have: the delivery is retried, and the plugin's author told.
        case unrecognized(String)
    }

    var id: String
    var status: Status
    var error: String?

    /// What a stdout line turned out to be.
    enum Parsed: Equatable {
        case answer(PluginAnswer)
        /// Blank line: ignored without a word.
        case blank
        /// Not an answer; `reason` is for the log.
        case invalid(reason: String)
    }

    /// The longest `error` text kept (it ends up in the store and the log).
    static let maximumErrorLength = 1000

    static func parse(_ line: [UInt8]) -> Parsed {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return .blank }
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, maxDepth: 16)
        } catch {
            return .invalid(reason: "not JSON (\(error.reason) at byte \(error.offset))")
        }
        guard let object = value.objectValue else { return .invalid(reason: "not a JSON object") }
        guard let id = object["id"]?.stringValue, !id.isEmpty else {
            return .invalid(reason: "no \"id\" string")
        }
        let status: Status
        switch object["status"]?.stringValue {
        case "ok": status = .ok
        case "retry": status = .retry
        case "drop": status = .drop
        case let other?: status = .unrecognized(bounded(other, to: 40))
        case nil: status = .unrecognized(object["status"].map { bounded($0.serializedString, to: 40) } ?? "(none)")
        }
        var error: String?
        switch object["error"] {
        case nil: error = nil
        case let value? where value.isNull: error = nil
        case let value?: error = bounded(value.stringValue ?? value.serializedString, to: maximumErrorLength)
        }
        return .answer(PluginAnswer(id: id, status: status, error: error))
    }

    static func bounded(_ text: String, to length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length)) + "…"
    }
}
