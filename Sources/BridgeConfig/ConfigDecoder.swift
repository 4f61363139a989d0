#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// Decodes ordinary `Decodable` types from a `ConfigDocument`.
///
/// - Scalars are interpreted YAML 1.2 style after `${VAR}` / `${VAR:-default}` substitution
///   (values only, never keys): `String` takes any scalar but a literal null; `Bool` only
///   `true`/`false`; integers and floats from plain or quoted text. An unquoted `~`, `null` or
///   empty value is nil for an optional, and so is a value that substitution leaves empty.
/// - Mappings decode into keyed containers and `[String: T]`, sequences into arrays.
/// - `Swift.Duration` fields read `30s`-style text like `ConfigDuration`.
/// - Every error is a `ConfigError` at the offending node, with the dotted path
///   (`routes[2].match`) for context. Decoding stops at the first error.
///
/// Opening a keyed container on a mapping (what synthesized `init(from:)` does) enrols it in
/// unknown-key checking; `unknownKeyErrors()` lists, after all decoding, the keys that no decode
/// asked for. To look at a node's shape without enrolling anything, switch on
/// `decoder.configNode`.
public struct ConfigDecoder: Sendable {
    /// The document being decoded.
    public let document: ConfigDocument
    /// Where `${VAR}` values come from.
    public let environment: [String: String]
    /// Handed to every `init(from:)` as `decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    public init(document: ConfigDocument, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.document = document
        self.environment = environment
    }

    /// Decodes `T` from `node` (default: the root). Throws `ConfigError` only, never a raw
    /// `DecodingError`. A node kept from an earlier decode (via `decoder.configNode`) keeps the
    /// path it was first met at in messages.
    public func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode? = nil) throws -> T {
        let context = DecodingContext(document: document, environment: environment, userInfo: userInfo)
        let node = node ?? document.root
        let path = document.keyTracker.path(of: node) ?? []
        do {
            return try context.decode(type, from: node, path: path)
        } catch {
            document.keyTracker.abandon(node)
            throw error
        }
    }

    /// After all decoding: every key, in every mapping that was decoded as a keyed container,
    /// that no decode asked for, as "unknown key 'tenat' in graph (did you mean 'tenant'?)" at
    /// the key's mark, in file order. Keys asked for by any decode of the same mapping node, by
    /// any decoder over this document, count as known. Mappings decoded as dictionaries accept
    /// all their keys; mappings never decoded are not checked (their parent's key was unknown,
    /// or they are kept as a `ConfigNode` for later).
    public func unknownKeyErrors() -> [ConfigError] {
        document.keyTracker.unknownKeyErrors(file: document.file)
    }

    /// The candidate an error should offer for a misspelt `word` ("did you mean"), chosen as for
    /// unknown keys: equal ignoring case, or else within edit distance 2; nil when none is close.
    public static func suggestion(for word: String, among candidates: [String]) -> String? {
        KeyTracker.suggestion(for: word, among: candidates)
    }

    /// Substitutes `${VAR}` references in `text` as the decoder does for values; errors at `mark`.
    public func interpolate(_ text: String, at mark: ConfigMark) throws(ConfigError) -> String {
        try DecodingContext(document: document, environment: environment, userInfo: userInfo).interpolate(
            text, at: mark)
    }
}

extension Decoder {
    /// The node being decoded when this is a `ConfigDecoder`'s decoder (nil otherwise).
    ///
    /// Switching on it is how a type probes the shape of its value (string, list or mapping)
    /// without side effects; it can also keep the node to decode later with
    /// `ConfigDecoder.decode(_:from:)` (a sink's own keys, once its `type` is known).
    public var configNode: ConfigNode? {
        (self as? NodeDecoder)?.node
    }

    /// An error at the current node's mark, for semantic checks inside `init(from:)` (an invalid
    /// regex, a port out of range). From a `ConfigDecoder` it is a `ConfigError` that surfaces
    /// unchanged, message as given; from any other decoder a `DecodingError.dataCorrupted`.
    public func configError(_ message: String) -> any Error {
        if let decoder = self as? NodeDecoder {
            return decoder.context.error(message, at: decoder.node.mark)
        }
        return DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: message))
    }

    /// Like `configError(_:)`, with " in PATH" appended: the form the decoder's own errors take.
    func configErrorWithPath(_ message: String) -> any Error {
        if let decoder = self as? NodeDecoder {
            return decoder.context.error(message, at: decoder.node.mark, path: codingPath)
        }
        return configError(message)
    }

    /// How a message names the scalar being decoded (the text as written, never an environment value).
    func configFoundDescription(_ text: String) -> String {
        if let decoder = self as? NodeDecoder {
            return decoder.context.found(decoder.node)
        }
        return ConfigNode.quote(text)
    }
}

extension Decoder {
    /// The text of a non-null scalar (interpolated), or an "expected `expected`, found ..." error
    /// for a list, mapping or null.
    func configScalar(expected: String) throws -> String {
        if let node = configNode, node.scalarText == nil || node.isNull {
            throw configErrorWithPath("expected \(expected), found \(node.foundDescription)")
        }
        return try singleValueContainer().decode(String.self)
    }
}
