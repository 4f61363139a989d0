public import SinkAPI
import Foundation

/// `type: stdout`: one line per event on standard output, for people (`text`) or tools (`json`).
///
/// ## Configuration keys
/// - `format`: `text` (default) or `json` (the event exactly as the file sink writes it).
public struct StdoutSink: Sink {
    public static let typeName = "stdout"

    public enum Format: String, Sendable, CaseIterable, ConfigEnum {
        case text, json
    }

    public struct Configuration: Decodable, Sendable {
        public var format: Format

        enum CodingKeys: String, CodingKey { case format }

        public init(format: Format = .text) { self.format = format }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            format = try container.decodeIfPresent(Format.self, forKey: .format) ?? .text
        }
    }

    let format: Format
    let writer: BlockingWriter
    let fd: Int32

    public init(name: String, configuration: Configuration, context: SinkContext) throws {
        self.init(name: name, configuration: configuration, fileDescriptor: STDOUT_FILENO)
    }

    /// Writes to `fileDescriptor` instead of standard output (tests).
    public init(name: String, configuration: Configuration, fileDescriptor: Int32) {
        self.format = configuration.format
        self.fd = fileDescriptor
        self.writer = BlockingWriter(label: "graph-bridge.sink.\(name)")
    }

    /// Lines per `write(2)` when events are queued.
    public var batchLimit: Int { 128 }

    public func deliver(_ event: BridgeEvent, attempt: DeliveryAttempt) async throws {
        try await write(line(for: event))
    }

    /// One `write(2)` for the whole batch, in order.
    public func deliver(batch: [SinkDelivery]) async throws {
        try await write(batch.flatMap { line(for: $0.event) })
    }

    private func line(for event: BridgeEvent) -> [UInt8] {
        var line: [UInt8]
        switch format {
        case .json: line = event.encoded()
        case .text: line = Array(Self.text(for: event).utf8)
        }
        line.append(0x0A)
        return line
    }

    private func write(_ bytes: [UInt8]) async throws {
        let fd = self.fd
        if let error = try await writer.run({ writeFully(fd, bytes) }) {
            throw SinkError.retryable("writing to standard output failed: \(String(cString: strerror(error)))")
        }
    }

    /// `2026-11-29T10:00:00.123Z inbox created Users/…/Messages/… "Subject" from Name <address>`
    public static func text(for event: BridgeEvent) -> String {
        var parts = [Timestamp.format(event.receivedAt), event.subscription.name]
        if let lifecycle = event.lifecycleEvent {
            parts.append("lifecycle:\(lifecycle)")
        } else if let changeType = event.changeType {
            parts.append(changeType)
        }
        if let resource = event.resource { parts.append(resource) }
        if let subject = event.data?["subject"]?.scalarText { parts.append("\"\(sanitized(subject))\"") }
        if let from = event.data?["from"]?["emailAddress"] {
            let name = from["name"]?.scalarText
            let address = from["address"]?.scalarText
            switch (name, address) {
            case let (name?, address?): parts.append("from \(sanitized(name)) <\(sanitized(address))>")
            case let (nil, address?): parts.append("from <\(sanitized(address))>")
            case let (name?, nil): parts.append("from \(sanitized(name))")
            case (nil, nil): break
            }
        }
        return parts.joined(separator: " ")
    }

    /// One event, one line: control characters (a newline in a subject) become spaces.
    static func sanitized(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }
}
