import BridgeCore
public import BridgeConfig
public import Foundation

extension BridgeConfiguration {
    /// Reads only the `state:` section of `path`: what the commands that only look into the state
    /// store (`subscriptions`, `dead-letters`) need. Nothing else in the file is decoded, so an
    /// unset `${VAR}` elsewhere (a client secret, a sink's password) does not stop them; an error
    /// inside `state:` (or a file that is no YAML mapping) still throws, positioned.
    public static func loadState(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> StateSettings {
        let document: ConfigDocument
        do {
            document = try ConfigDocument.load(path: path)
        } catch {
            throw ConfigErrors(errors: [error])
        }
        return try loadState(document: document, environment: environment)
    }

    /// ``loadState(path:environment:)`` over a parsed document.
    public static func loadState(
        document: ConfigDocument,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> StateSettings {
        guard case .mapping = document.root else {
            throw ConfigErrors(errors: [
                ConfigError(
                    file: document.file, mark: document.root.mark,
                    message: "the configuration must be a mapping of sections (graph, server, state, subscriptions, sinks, routes, retry)")
            ])
        }
        let decoder = ConfigDecoder(document: document, environment: environment)
        let keys: StateSettings.Keys?
        do {
            keys = try decoder.decode(StateSection.self).keys
        } catch let error as ConfigError {
            throw ConfigErrors(errors: [error])
        } catch {
            throw ConfigErrors(errors: [ConfigError(file: document.file, mark: document.root.mark, message: "\(error)")])
        }
        // Every other section counts as known: these are the unknown keys inside `state:`.
        let unknown = decoder.unknownKeyErrors()
        if !unknown.isEmpty { throw ConfigErrors(errors: unknown) }
        return StateSettings(keys: keys, directory: document.directory)
    }
}

extension BridgeConfiguration {
    /// The sink names under `sinks:` of `path` as written, read without decoding anything (no
    /// variable needs to be set); nil when the file cannot be read or parsed.
    public static func declaredSinkNames(path: String) -> [String]? {
        guard let document = try? ConfigDocument.load(path: path) else { return nil }
        return document.root["sinks"]?.keys ?? []
    }
}

/// The root mapping seen only for its `state:`: the other sections are not read, so none of their keys is unknown.
private struct StateSection: Decodable {
    var keys: StateSettings.Keys?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys { _ = container.contains(key) }
        keys = try container.decodeIfPresent(StateSettings.Keys.self, forKey: Key(stringValue: "state"))
    }
}
