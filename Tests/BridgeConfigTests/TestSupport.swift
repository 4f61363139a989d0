import Foundation
import Testing

@testable import BridgeConfig

/// Parses `yaml` as `bridge.yaml` in `/etc/bridge`.
func parse(_ yaml: String, file: String = "bridge.yaml", directory: String = "/etc/bridge") throws -> ConfigDocument {
    try ConfigDocument.parse(yaml, file: file, directory: directory)
}

/// Parses and decodes `yaml` as `T` with the given environment.
func decode<T: Decodable>(_ type: T.Type, _ yaml: String, environment: [String: String] = [:]) throws -> T {
    try ConfigDecoder(document: parse(yaml), environment: environment).decode(type)
}

/// The `ConfigError` that parsing or decoding `yaml` as `T` throws; records an issue when it
/// throws something else or nothing.
func failure<T: Decodable>(
    _ target: T.Type, _ yaml: String, environment: [String: String] = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) -> ConfigError? {
    do {
        _ = try decode(target, yaml, environment: environment)
        Issue.record("expected a ConfigError, decoding succeeded", sourceLocation: sourceLocation)
    } catch let error as ConfigError {
        return error
    } catch {
        Issue.record("expected a ConfigError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// The error that parsing alone throws.
func parseFailure(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
    do {
        _ = try parse(yaml)
        Issue.record("expected a parse error", sourceLocation: sourceLocation)
    } catch {
        return error as? ConfigError
    }
    return nil
}

/// Decodes `yaml` as `T` and returns the value with the unknown-key errors found afterwards.
func decodeChecked<T: Decodable>(_ type: T.Type, _ yaml: String, environment: [String: String] = [:]) throws -> (
    T, [ConfigError]
) {
    let decoder = ConfigDecoder(document: try parse(yaml), environment: environment)
    let value = try decoder.decode(type)
    return (value, decoder.unknownKeyErrors())
}

func mark(_ line: Int, _ column: Int) -> ConfigMark {
    ConfigMark(line: line, column: column)
}

// MARK: Shared config shapes

struct GraphSection: Decodable, Equatable {
    var tenant: String
    var clientId: String?
    var clientSecret: String?
}

struct ServerSection: Decodable, Equatable {
    var listen: String
    var port: Int?
    var maxBodyBytes: ConfigByteSize?
}

struct RootConfig: Decodable {
    var graph: GraphSection
    var server: ServerSection?
}

enum TemporaryFiles {
    static func write(_ text: String, to path: String) throws {
        try write(bytes: Array(text.utf8), to: path)
    }

    static func write(bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}
