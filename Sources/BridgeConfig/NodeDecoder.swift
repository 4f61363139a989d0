/// The `Decoder` a `ConfigDecoder` hands to `init(from:)`: one node and its path.
struct NodeDecoder: Decoder {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let context: DecodingContext

    var userInfo: [CodingUserInfoKey: Any] { context.userInfo }

    /// Opening a keyed container on a mapping enrols it in unknown-key checking.
    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let entries, let mark) = node else {
            throw context.mismatch("a mapping", node, path: codingPath)
        }
        context.tracker.openMapping(node, path: codingPath.map(PathKey.init))
        return KeyedDecodingContainer(
            KeyedContainer<Key>(entries: entries, mark: mark, codingPath: codingPath, context: context)
        )
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let items, let mark) = node else {
            throw context.mismatch("a list", node, path: codingPath)
        }
        return UnkeyedContainer(items: items, mark: mark, codingPath: codingPath, context: context)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueContainer(node: node, codingPath: codingPath, context: context)
    }
}

// MARK: - Keyed

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let entries: [(key: String, keyMark: ConfigMark, value: ConfigNode)]
    let mark: ConfigMark
    let codingPath: [any CodingKey]
    let context: DecodingContext
    private let positions: [String: Int]

    init(
        entries: [(key: String, keyMark: ConfigMark, value: ConfigNode)], mark: ConfigMark,
        codingPath: [any CodingKey], context: DecodingContext
    ) {
        self.entries = entries
        self.mark = mark
        self.codingPath = codingPath
        self.context = context
        var positions: [String: Int] = [:]
        for (position, entry) in entries.enumerated() where positions[entry.key] == nil {
            positions[entry.key] = position
        }
        self.positions = positions
    }

    /// Every key present that `Key` can represent. Listing keys does not mark them as known.
    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

    func contains(_ key: Key) -> Bool {
        ask(key)
        return positions[key.stringValue] != nil
    }

    private func ask(_ key: Key) {
        context.tracker.ask(key.stringValue, inMappingAt: mark)
    }

    private func value(for key: Key) throws -> ConfigNode {
        ask(key)
        guard let position = positions[key.stringValue] else {
            throw context.error("missing required key '\(key.stringValue)'", at: mark, path: codingPath)
        }
        return entries[position].value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try context.isNull(value(for: key))
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try context.decode(type, from: value(for: key), path: codingPath + [key])
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(type, key) }

    private func decode<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try context.decode(type, from: value(for: key), path: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try decoder(for: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder(for: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        let key = PathKey(stringValue: "super")
        context.tracker.ask(key.stringValue, inMappingAt: mark)
        guard let position = positions[key.stringValue] else {
            throw context.error("missing required key 'super'", at: mark, path: codingPath)
        }
        return NodeDecoder(node: entries[position].value, codingPath: codingPath + [key], context: context)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try decoder(for: key)
    }

    private func decoder(for key: Key) throws -> NodeDecoder {
        let node = try value(for: key)
        let path = codingPath + [key]
        context.tracker.remember(node, path: path.map(PathKey.init))
        return NodeDecoder(node: node, codingPath: path, context: context)
    }
}

// MARK: - Unkeyed

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [ConfigNode]
    let mark: ConfigMark
    let codingPath: [any CodingKey]
    let context: DecodingContext
    private(set) var currentIndex = 0

    init(items: [ConfigNode], mark: ConfigMark, codingPath: [any CodingKey], context: DecodingContext) {
        self.items = items
        self.mark = mark
        self.codingPath = codingPath
        self.context = context
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    /// The next item and its path, without moving on.
    private func peek() throws -> (node: ConfigNode, path: [any CodingKey]) {
        guard !isAtEnd else {
            throw context.error(
                "expected at least \(items.count + 1) items, found \(items.count)", at: mark, path: codingPath
            )
        }
        return (items[currentIndex], codingPath + [PathKey.index(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        let (node, _) = try peek()
        guard try context.isNull(node) else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (node, path) = try peek()
        let value = try context.decode(type, from: node, path: path)
        currentIndex += 1
        return value
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try decodeNext(type) }
    mutating func decode(_ type: String.Type) throws -> String { try decodeNext(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try decodeNext(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try decodeNext(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try decodeNext(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decodeNext(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decodeNext(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decodeNext(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decodeNext(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decodeNext(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeNext(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeNext(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeNext(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeNext(type) }

    private mutating func decodeNext<T: Decodable>(_ type: T.Type) throws -> T {
        let (node, path) = try peek()
        let value = try context.decode(type, from: node, path: path)
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let container = try nextDecoder().container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try nextDecoder().unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = try nextDecoder()
        currentIndex += 1
        return decoder
    }

    private func nextDecoder() throws -> NodeDecoder {
        let (node, path) = try peek()
        context.tracker.remember(node, path: path.map(PathKey.init))
        return NodeDecoder(node: node, codingPath: path, context: context)
    }
}

// MARK: - Single value

private struct SingleValueContainer: SingleValueDecodingContainer {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let context: DecodingContext

    /// Never throws: a broken `${...}` is not null, and the following decode reports it.
    func decodeNil() -> Bool {
        (try? context.isNull(node)) ?? false
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try context.decode(type, from: node, path: codingPath)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: String.Type) throws -> String { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try context.decode(type, from: node, path: codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try context.decode(type, from: node, path: codingPath) }
}
