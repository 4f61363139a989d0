import BridgeCore
public import BridgeConfig

/// The keys of a sink block that the core reads; the plugin reads the rest of the same block.
struct SinkHeader: Decodable {
    var type: String
    var typeMark: ConfigMark?
    var retryNode: ConfigNode?
    var concurrency: Int?

    enum CodingKeys: String, CodingKey { case type, retry, concurrency }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(Located<String>.self, forKey: .type)
        self.type = type.value
        self.typeMark = type.mark
        retryNode = try container.decodeIfPresent(NodeCapture.self, forKey: .retry)?.node
        concurrency = try container.decodeIfPresent(Int.self, forKey: .concurrency)
        if let concurrency, !(1...256).contains(concurrency) {
            throw decoder.configError("concurrency must be between 1 and 256")
        }
    }
}

/// A value together with where it was written, for errors found after decoding (an undefined sink).
public struct Located<Value: Decodable & Sendable>: Decodable, Sendable {
    public var value: Value
    public var mark: ConfigMark?

    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Value.self)
        mark = decoder.configNode?.mark
    }
}

/// Keeps a node to decode later, once its meaning is known.
struct NodeCapture: Decodable {
    var node: ConfigNode

    init(from decoder: any Decoder) throws {
        guard let node = decoder.configNode else { throw decoder.configError("internal: not decoding a config file") }
        self.node = node
    }
}
