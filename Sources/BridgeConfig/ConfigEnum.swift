/// A string enum read from the config, whose error lists the allowed values:
/// "expected one of text, json; found 'xml' in sinks.console.format".
///
/// ```swift
/// enum OutputFormat: String, ConfigEnum { case text, json }
/// ```
///
/// A plain `enum X: String, Decodable, CaseIterable` gets the same message from `ConfigDecoder`
/// (it recognises the standard library's raw-value failure); conforming to `ConfigEnum` makes the
/// type produce it itself, so other decoders report it too (as a `DecodingError`).
public protocol ConfigEnum: RawRepresentable, CaseIterable, Decodable, Sendable where RawValue == String {}

extension ConfigEnum {
    public init(from decoder: any Decoder) throws {
        let allowed = Self.allCases.map(\.rawValue).joined(separator: ", ")
        let text = try decoder.configScalar(expected: "one of \(allowed)")
        guard let value = Self(rawValue: text) else {
            throw decoder.configErrorWithPath(
                "expected one of \(allowed); found \(decoder.configFoundDescription(text))")
        }
        self = value
    }
}
