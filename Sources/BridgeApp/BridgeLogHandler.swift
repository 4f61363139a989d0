import BridgeCore
import Foundation
public import Logging
import Synchronization

/// Log lines on standard error, as text for people or JSON for collectors. One line per entry.
public struct BridgeLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: Format
    let output: LogOutput

    public init(label: String, format: Format, level: Logger.Level, output: LogOutput = .standardError) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = Date()
        let line: String
        switch format {
        case .text:
            var text = "\(Self.timestamp(time)) \(event.level) \(event.message)"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                text += " \(key)=\(Self.quoteIfNeeded("\(value)"))"
            }
            line = text
        case .json:
            var out: [UInt8] = Array("{\"time\":\"\(Self.timestamp(time))\",\"level\":\"\(event.level)\",\"message\":".utf8)
            Self.appendJSONString("\(event.message)", to: &out)
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                out.append(UInt8(ascii: ","))
                Self.appendJSONString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                Self.appendJSONString("\(value)", to: &out)
            }
            out.append(UInt8(ascii: "}"))
            line = String(decoding: out, as: UTF8.self)
        }
        output.write(line + "\n")
    }

    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64(date.timeIntervalSince1970 * 1000)
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(milliseconds % 1000))
    }

    static func quoteIfNeeded(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else { return value }
        var out: [UInt8] = []
        appendJSONString(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string literal, escaped as the event JSON is (one implementation for both).
    static func appendJSONString(_ string: String, to out: inout [UInt8]) {
        JSONValue.writeString(string, to: &out)
    }
}

/// Where log lines go; standard error unless a test collects them.
public struct LogOutput: Sendable {
    let write: @Sendable (String) -> Void

    public init(write: @escaping @Sendable (String) -> Void) { self.write = write }

    func write(_ line: String) { write(line) }

    public static let standardError = LogOutput { line in
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { if errno == EINTR { continue }; return }
                offset += written
            }
        }
    }
}

extension Logger.Level {
    public init?(configValue: String) {
        self.init(rawValue: configValue.lowercased())
    }
}
