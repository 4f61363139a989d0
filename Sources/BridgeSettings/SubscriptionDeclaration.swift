import BridgeCore
public import BridgeConfig

/// One entry of `subscriptions:`.
public struct SubscriptionDeclaration: Sendable, Decodable {
    public enum ChangeType: String, Sendable, CaseIterable, ConfigEnum {
        case created, updated, deleted
    }

    /// How changes Graph could not notify are caught up with.
    public enum Resync: String, Sendable, CaseIterable, ConfigEnum {
        case none, delta
    }

    /// `encryption:`: the key pair Graph encrypts rich notifications for, and the earlier ones
    /// that still decrypt while Graph moves to it (key rotation).
    public struct Encryption: Sendable, Decodable {
        public var certificate: ConfigPath
        public var key: ConfigPath
        public var id: String
        /// `previous:` key pairs: they decrypt items that name their id; Graph is never given them.
        public var previous: [KeyPair]

        /// The current key pair, then the previous ones.
        public var keyPairs: [KeyPair] { [KeyPair(certificate: certificate, key: key, id: id)] + previous }

        enum CodingKeys: String, CodingKey {
            case certificate, key, id, previous
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            certificate = try container.decode(ConfigPath.self, forKey: .certificate)
            key = try container.decode(ConfigPath.self, forKey: .key)
            id = try container.decode(String.self, forKey: .id)
            try Self.checkID(id, decoder: try container.superDecoder(forKey: .id))
            previous = []
            guard container.contains(.previous), try !container.decodeNil(forKey: .previous) else { return }
            var list = try container.nestedUnkeyedContainer(forKey: .previous)
            var seen: Set<String> = [id]
            while !list.isAtEnd {
                let entry = try list.superDecoder()
                let pair = try KeyPair(from: entry)
                guard pair.id != id else {
                    throw entry.configError("encryption: previous key id '\(pair.id)' is the current id; give the new key pair its own id")
                }
                guard seen.insert(pair.id).inserted else {
                    throw entry.configError("encryption: previous key id '\(pair.id)' is listed twice")
                }
                previous.append(pair)
            }
        }

        /// Graph's limit on `encryptionCertificateId`.
        static func checkID(_ id: String, decoder: any Decoder) throws {
            guard !id.isEmpty, id.count <= 128 else {
                throw decoder.configError("encryption id must be 1 to 128 characters (Graph's encryptionCertificateId)")
            }
        }
    }

    /// One key pair of `encryption:`: a PEM certificate, its PEM private key, and the id Graph names it by.
    public struct KeyPair: Sendable, Decodable {
        public var certificate: ConfigPath
        public var key: ConfigPath
        public var id: String

        enum CodingKeys: String, CodingKey {
            case certificate, key, id
        }

        public init(certificate: ConfigPath, key: ConfigPath, id: String) {
            self.certificate = certificate
            self.key = key
            self.id = id
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            certificate = try container.decode(ConfigPath.self, forKey: .certificate)
            key = try container.decode(ConfigPath.self, forKey: .key)
            id = try container.decode(String.self, forKey: .id)
            try Encryption.checkID(id, decoder: try container.superDecoder(forKey: .id))
        }
    }

    public var name: String
    /// false: a receive-only subscription made elsewhere; the bridge never creates, renews or deletes it.
    public var manage: Bool
    public var resource: String?
    public var changeTypes: [ChangeType]
    public var expiration: Duration?
    /// Fields to GET (`$select`) for each changed item, into the event's `data`.
    public var fetch: [String]?
    public var includeResourceData: Bool
    public var encryption: Encryption?
    /// `resync: delta`: catch up with Graph's delta query after gaps (SPEC section 8); `none` (the default) does not.
    public var resync: Resync
    /// Receive-only: Graph's subscription id.
    public var id: String?
    /// Receive-only: the secret the subscription was created with.
    public var clientState: String?
    /// Where `name:` is, for errors about the whole entry.
    public var mark: ConfigMark?

    enum CodingKeys: String, CodingKey {
        case name, manage, resource, changeTypes, expiration, fetch, includeResourceData, encryption, id, clientState, resync
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mark = decoder.configNode?.mark
        name = try container.decode(String.self, forKey: .name)
        manage = try container.decodeIfPresent(Bool.self, forKey: .manage) ?? true
        resource = try container.decodeIfPresent(String.self, forKey: .resource)
        changeTypes = try container.decodeIfPresent([ChangeType].self, forKey: .changeTypes) ?? []
        expiration = try container.decodeIfPresent(ConfigDuration.self, forKey: .expiration)?.duration
        fetch = try container.decodeIfPresent([String].self, forKey: .fetch)
        includeResourceData = try container.decodeIfPresent(Bool.self, forKey: .includeResourceData) ?? false
        encryption = try container.decodeIfPresent(Encryption.self, forKey: .encryption)
        id = try container.decodeIfPresent(String.self, forKey: .id)
        clientState = try container.decodeIfPresent(String.self, forKey: .clientState)
        resync = try container.decodeIfPresent(Resync.self, forKey: .resync) ?? .none

        guard !name.isEmpty else { throw decoder.configError("a subscription needs a non-empty name") }
        if manage {
            guard let resource, !resource.isEmpty else {
                throw decoder.configError("subscription '\(name)' needs resource: (or manage: false with id and clientState)")
            }
            guard !changeTypes.isEmpty else {
                throw decoder.configError("subscription '\(name)' needs changeTypes: e.g. [created]")
            }
            if id != nil || clientState != nil {
                throw decoder.configError("subscription '\(name)': id and clientState belong to receive-only subscriptions (manage: false); the bridge makes its own")
            }
            if includeResourceData, encryption == nil {
                throw decoder.configError("subscription '\(name)': includeResourceData: true needs encryption: { certificate, key, id }")
            }
            if resync == .delta, let problem = DeltaResource.problem(resource) {
                throw try container.superDecoder(forKey: .resync).configError("subscription '\(name)': resync: delta \(problem)")
            }
        } else {
            if resync == .delta {
                throw try container.superDecoder(forKey: .resync).configError(
                    "receive-only subscription '\(name)': resync: delta needs a managed subscription (the bridge keeps its deltaLink from the create on)")
            }
            guard let id, !id.isEmpty else {
                throw decoder.configError("receive-only subscription '\(name)' needs id: (its Graph subscription id)")
            }
            guard let clientState, !clientState.isEmpty else {
                throw decoder.configError("receive-only subscription '\(name)' needs clientState: (the secret it was created with)")
            }
            if clientState.utf8.count > 255 {
                throw decoder.configError("receive-only subscription '\(name)': clientState is longer than Graph allows")
            }
        }
    }
}
