public import BridgeCore
import BridgeConfig

/// The sink plugins this build knows, by `type:` name. Built explicitly at the composition root:
/// no global registration, no runtime discovery.
public struct SinkRegistry: Sendable {
    private let types: [String: any Sink.Type]

    public init(_ types: [any Sink.Type]) {
        var byName: [String: any Sink.Type] = [:]
        for type in types { byName[type.typeName] = type }
        self.types = byName
    }

    /// The known `type:` names, sorted.
    public var typeNames: [String] { types.keys.sorted() }

    public func type(named name: String) -> (any Sink.Type)? { types[name] }

    /// Decodes the plugin's own configuration from the sink's YAML block. Errors carry the block's positions.
    func prepare(type: any Sink.Type, name: String, node: ConfigNode, decoder: ConfigDecoder) throws -> SinkFactory {
        try Self.prepare(type, name: name, node: node, decoder: decoder)
    }

    private static func prepare<S: Sink>(_ type: S.Type, name: String, node: ConfigNode, decoder: ConfigDecoder) throws -> SinkFactory {
        let configuration = try decoder.decode(S.Configuration.self, from: node)
        return SinkFactory(defaultConcurrency: S.defaultConcurrency) { context in
            try S(name: name, configuration: configuration, context: context)
        }
    }
}
