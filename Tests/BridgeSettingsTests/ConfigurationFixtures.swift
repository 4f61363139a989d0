import BridgeCore

/// A sink type for configuration tests: decodes one key of its own (`label`) so the tests can
/// check that a plugin's keys reach it and an unknown key is refused; never delivers.
struct RecordingSink: Sink {
    static let typeName = "recording"
    static let defaultConcurrency = 2

    struct Configuration: Decodable, Sendable {
        var label: String?
    }

    init(name: String, configuration: Configuration, context: SinkContext) throws {}

    func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {}
}
