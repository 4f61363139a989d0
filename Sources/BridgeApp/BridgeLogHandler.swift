import BridgeCore
import Foundation
public import Logging
import Synchronization

/// Log lines on standard error, as text for people or JSON for collectors. One line per entry.
///
/// Logged values can come from outside (a subscription id in a forged notification, a plugin's
/// stderr, an error quoting a request), so every C0 and C1 control character (U+0000-U+001F,
/// DEL, U+0080-U+009F) in the message, the metadata keys and values is escaped in both formats:
/// a value can never start a line of its own, move the cursor or colour a terminal. In text the
/// message shows them as `\n`, `\r`, `\t`, `\u001b`; a metadata value holding one is written as
/// a quoted JSON string. JSON lines stay valid, single-line JSON.
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
            var text = "\(Self.timestamp(time)) \(event.level) \(Self.escapingControls("\(event.message)"))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                text += " \(Self.escapingControls(key))=\(Self.quoteIfNeeded("\(value)"))"
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
        guard
            value.isEmpty
                || value.unicodeScalars.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || isControl($0) || $0.properties.isWhitespace })
        else { return value }
        var out: [UInt8] = []
        appendJSONString(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F), plus the Unicode line and
    /// paragraph separators (U+2028, U+2029), which some viewers break lines at.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// `text` with each control character as its JSON escape (`\n`, `\u001b`, `\u0085`), the rest as it is.
    static func escapingControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out: [UInt8] = []
        for scalar in text.unicodeScalars {
            if isControl(scalar) { appendEscape(scalar, to: &out) } else { Unicode.UTF8.encode(scalar) { out.append($0) } }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string literal with every control character escaped, C1 and DEL included (the
    /// event JSON's writer leaves those two as they are, which JSON allows but terminals do not).
    static func appendJSONString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: [0x5C, 0x22])
            case "\\": out.append(contentsOf: [0x5C, 0x5C])
            case _ where isControl(scalar): appendEscape(scalar, to: &out)
            default: Unicode.UTF8.encode(scalar) { out.append($0) }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `\n`, `\r`, `\t`, `\b`, `\f`, or `\u00XX`.
    static func appendEscape(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
        switch scalar {
        case "\n": out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case "\r": out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case "\t": out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        case "\u{08}": out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
        case "\u{0C}": out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
        default:
            let hex = Array("0123456789abcdef".utf8)
            let value = Int(scalar.value)
            out.append(contentsOf: [0x5C, UInt8(ascii: "u")])
            out.append(contentsOf: [hex[(value >> 12) & 0xF], hex[(value >> 8) & 0xF], hex[(value >> 4) & 0xF], hex[value & 0xF]])
        }
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
