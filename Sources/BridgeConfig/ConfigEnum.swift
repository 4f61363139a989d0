/// A string enum read from the config, whose error lists the allowed values:
/// "expected one of text, json; found 'xml' in sinks.console.format".
///
/// ```swift
/// enum OutputFormat: String, ConfigEnum { case text, json }
/// ```
///
/// Plain `enum X: String, Decodable, CaseIterable` gets the same message from `ConfigDecoder`;
/// this protocol also gives it to types decoded through other decoders' `configError` path.
public protocol ConfigEnum: RawRepresentable, CaseIterable, Decodable, Sendable where RawValue == String {}

extension ConfigEnum {
    public init(from decoder: any Decoder) throws {
        let allowed = Self.allCases.map(\.rawValue).joined(separator: ", ")
        let text = try decoder.configScalar(expected: "one of \(allowed)")
        guard let value = Self(rawValue: text) else {
            throw decoder.configErrorWithPath("expected one of \(allowed); found \(decoder.configFoundDescription(text))")
        }
        self = value
    }
}
