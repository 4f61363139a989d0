public import BridgeCore
public import BridgeConfig
public import Foundation

/// A whole, valid `bridge.yaml`: every section decoded, every reference checked, every sink's
/// own keys decoded by its plugin.
public struct BridgeConfiguration: Sendable {
    /// The path of the file as given.
    public var file: String
    public var graph: GraphSettings?
    public var server: ServerSettings
    public var state: StateSettings
    public var subscriptions: [SubscriptionDeclaration]
    /// In file order.
    public var sinks: [ConfiguredSink]
    public var router: Router
    public var retry: RetryPolicy

    /// Receive-only subscriptions as the listener knows them.
    public var receiveOnlyEntries: [SubscriptionEntry] {
        subscriptions.compactMap { declaration in
            guard !declaration.manage, let id = declaration.id, let clientState = declaration.clientState else { return nil }
            return SubscriptionEntry(name: declaration.name, id: id, resource: declaration.resource, clientState: clientState)
        }
    }

    /// Reads and checks `path`. Throws ``ConfigErrors`` holding every problem found, sorted by position.
    public static func load(
        path: String,
        registry: SinkRegistry,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> BridgeConfiguration {
        let document: ConfigDocument
        do {
            document = try ConfigDocument.load(path: path)
        } catch {
            throw ConfigErrors(errors: [error])
        }
        return try load(document: document, registry: registry, environment: environment)
    }

    public static func load(
        document: ConfigDocument,
        registry: SinkRegistry,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> BridgeConfiguration {
        var loader = Loader(document: document, registry: registry, decoder: ConfigDecoder(document: document, environment: environment))
        return try loader.load()
    }
}

/// Decodes section by section so that one `check` run reports every independent error.
private struct Loader {
    let document: ConfigDocument
    let registry: SinkRegistry
    let decoder: ConfigDecoder
    var errors: [ConfigError] = []

    init(document: ConfigDocument, registry: SinkRegistry, decoder: ConfigDecoder) {
        self.document = document
        self.registry = registry
        self.decoder = decoder
    }

    struct Sections: Decodable {
        var graph: NodeCapture?
        var server: NodeCapture?
        var state: NodeCapture?
        var subscriptions: NodeCapture?
        var sinks: NodeCapture?
        var routes: NodeCapture?
        var retry: NodeCapture?
    }

    mutating func attempt<T>(_ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch let error as ConfigError {
            errors.append(error)
        } catch let error as ConfigErrors {
            errors.append(contentsOf: error.errors)
        } catch {
            errors.append(ConfigError(file: document.file, mark: nil, message: "\(error)"))
        }
        return nil
    }

    func error(_ message: String, at mark: ConfigMark?) -> ConfigError {
        ConfigError(file: document.file, mark: mark, message: message)
    }

    mutating func load() throws(ConfigErrors) -> BridgeConfiguration {
        let decoder = self.decoder
        guard case .mapping = document.root else {
            throw ConfigErrors(errors: [error("the configuration must be a mapping of sections (graph, server, state, subscriptions, sinks, routes, retry)", at: document.root.mark)])
        }
        let root = document.root
        guard let sections = attempt({ try decoder.decode(Sections.self, from: root) }) else {
            throw ConfigErrors(errors: errors)
        }

        let graph = sections.graph.flatMap { node in attempt { try decoder.decode(GraphSettings.self, from: node.node) } }
        let server = sections.server.map { node in attempt { try decoder.decode(ServerSettings.self, from: node.node) } } ?? .default
        let stateKeys = sections.state.map { node in attempt { try decoder.decode(StateSettings.Keys.self, from: node.node) } } ?? nil
        let state = StateSettings(keys: stateKeys, directory: document.directory)
        let retry = sections.retry.map { node in attempt { try decoder.decode(RetryBlock.self, from: node.node).policy } } ?? .default
        let subscriptions = loadSubscriptions(sections.subscriptions?.node)
        let sinks = loadSinks(sections.sinks?.node, defaultRetry: retry ?? .default)
        // Routes are checked against every declared sink name, so a sink with its own error is not reported twice.
        var declaredSinks: Set<String> = []
        if case .mapping(let pairs, _)? = sections.sinks?.node { declaredSinks = Set(pairs.map(\.key)) }
        let routes = loadRoutes(sections.routes?.node, sinkNames: declaredSinks)

        checkSubscriptions(subscriptions, graph: graph, graphGiven: sections.graph != nil, server: server)
        errors.append(contentsOf: decoder.unknownKeyErrors())

        if !errors.isEmpty {
            var unique: [ConfigError] = []
            for error in errors.sorted(by: { ($0.mark ?? ConfigMark(line: 0, column: 0)) < ($1.mark ?? ConfigMark(line: 0, column: 0)) })
            where !unique.contains(error) {
                unique.append(error)
            }
            throw ConfigErrors(errors: unique)
        }
        return BridgeConfiguration(
            file: document.file,
            graph: graph,
            server: server ?? .default,
            state: state,
            subscriptions: subscriptions,
            sinks: sinks,
            router: Router(routes: routes),
            retry: retry ?? .default
        )
    }

    mutating func loadSubscriptions(_ node: ConfigNode?) -> [SubscriptionDeclaration] {
        guard let node else { return [] }
        guard case .sequence(let items, _) = node else {
            errors.append(error("subscriptions must be a list of entries with name:", at: node.mark))
            return []
        }
        let decoder = self.decoder
        return items.compactMap { item in attempt { try decoder.decode(SubscriptionDeclaration.self, from: item) } }
    }

    mutating func loadSinks(_ node: ConfigNode?, defaultRetry: RetryPolicy) -> [ConfiguredSink] {
        guard let node else { return [] }
        guard case .mapping(let pairs, _) = node else {
            errors.append(error("sinks must be a mapping of sink names to their settings", at: node.mark))
            return []
        }
        let decoder = self.decoder
        let registry = self.registry
        // Decoding the section as a dictionary marks every sink name as a known key.
        _ = attempt { try decoder.decode([String: NodeCapture].self, from: node) }
        var sinks: [ConfiguredSink] = []
        for pair in pairs {
            let name = pair.key
            guard let header = attempt({ try decoder.decode(SinkHeader.self, from: pair.value) }) else { continue }
            guard let type = registry.type(named: header.type) else {
                errors.append(error("unknown sink type '\(header.type)' for sink '\(name)' (known types: \(registry.typeNames.joined(separator: ", ")))", at: header.typeMark))
                // Which keys belong here depends on the type: with no type known, none of them is unknown.
                _ = attempt { try decoder.decode([String: NodeCapture].self, from: pair.value) }
                continue
            }
            var retry: RetryPolicy? = defaultRetry
            if let retryNode = header.retryNode {
                retry = attempt { try decoder.decode(RetryOverride.self, from: retryNode).apply(over: defaultRetry) }
                if let problem = retry?.problem {
                    errors.append(error(problem, at: retryNode.mark))
                    retry = nil
                }
            }
            guard let retry,
                let factory = attempt({ try registry.prepare(type: type, name: name, node: pair.value, decoder: decoder) })
            else { continue }
            sinks.append(ConfiguredSink(
                name: name,
                type: header.type,
                retry: retry,
                concurrency: header.concurrency ?? factory.defaultConcurrency,
                factory: factory
            ))
        }
        return sinks
    }

    mutating func loadRoutes(_ node: ConfigNode?, sinkNames: Set<String>) -> [Route] {
        guard let node else { return [] }
        guard case .sequence(let items, _) = node else {
            errors.append(error("routes must be a list of { match:, to: } entries", at: node.mark))
            return []
        }
        let decoder = self.decoder
        var routes: [Route] = []
        for item in items {
            guard let declaration = attempt({ try decoder.decode(RouteDeclaration.self, from: item) }) else { continue }
            for problem in declaration.pathProblems { errors.append(error(problem.message, at: problem.mark)) }
            for target in declaration.to where !sinkNames.contains(target.value) {
                let known = sinkNames.sorted()
                let hint = known.isEmpty ? "no sinks are defined" : "defined sinks: \(known.joined(separator: ", "))"
                errors.append(error("route sends to undefined sink '\(target.value)' (\(hint))", at: target.mark))
            }
            routes.append(declaration.route)
        }
        return routes
    }

    mutating func checkSubscriptions(_ subscriptions: [SubscriptionDeclaration], graph: GraphSettings?, graphGiven: Bool, server: ServerSettings?) {
        var names: Set<String> = []
        var ids: Set<String> = []
        for subscription in subscriptions {
            if !names.insert(subscription.name).inserted {
                errors.append(error("duplicate subscription name '\(subscription.name)'", at: subscription.mark))
            }
            if let id = subscription.id, !ids.insert(id.lowercased()).inserted {
                errors.append(error("subscription id '\(id)' is declared twice", at: subscription.mark))
            }
            if !subscription.manage {
                // What `run` needs Graph for on a subscription it does not manage.
                if subscription.encryption != nil, !graphGiven {
                    errors.append(error(
                        "receive-only subscription '\(subscription.name)': rich notifications (encryption:) need a graph: section with tenant and clientId, to check Graph's validation tokens",
                        at: subscription.mark))
                }
                if subscription.fetch != nil, !graphGiven {
                    errors.append(error(
                        "receive-only subscription '\(subscription.name)': fetch: reads the changed items from Graph, which needs a graph: section", at: subscription.mark))
                } else if subscription.fetch != nil, (subscription.resource ?? "").isEmpty {
                    errors.append(error(
                        "receive-only subscription '\(subscription.name)': fetch: needs resource: (the subscription's resource, as created), so items are read only inside it",
                        at: subscription.mark))
                }
            }
            if subscription.manage {
                if !graphGiven {
                    errors.append(error("subscription '\(subscription.name)' is managed by the bridge, which needs a graph: section (or set manage: false)", at: subscription.mark))
                }
                if let server, server.publicUrl == nil {
                    errors.append(error("subscription '\(subscription.name)' is managed by the bridge, which needs server.publicUrl so Graph can reach it", at: subscription.mark))
                }
            }
        }
    }
}

/// A `retry:` block: only the keys it names replace the defaults.
struct RetryOverride: Decodable {
    var initialBackoff: ConfigDuration?
    var maxBackoff: ConfigDuration?
    var maxAge: ConfigDuration?

    func apply(over base: RetryPolicy) -> RetryPolicy {
        RetryPolicy(
            initialBackoff: initialBackoff?.duration ?? base.initialBackoff,
            maxBackoff: maxBackoff?.duration ?? base.maxBackoff,
            maxAge: maxAge?.duration ?? base.maxAge
        )
    }
}

/// The top-level `retry:` block over the defaults, refused at its position when its values do not fit together.
struct RetryBlock: Decodable {
    var policy: RetryPolicy

    init(from decoder: any Decoder) throws {
        policy = try RetryOverride(from: decoder).apply(over: .default)
        if let problem = policy.problem { throw decoder.configError(problem) }
    }
}
