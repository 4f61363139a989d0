/// All keys of a `match:` block must hold.
public struct Matcher: Sendable {
    public struct Condition: Sendable {
        public var path: EventPath
        public var value: MatchValue
        public init(path: EventPath, value: MatchValue) {
            self.path = path
            self.value = value
        }
    }

    public var conditions: [Condition]

    public init(_ conditions: [Condition]) { self.conditions = conditions }

    public func matches(_ event: JSONValue) -> Bool {
        conditions.allSatisfy { $0.value.matches($0.path.values(in: event)) }
    }
}

/// One entry of `routes:`.
public struct Route: Sendable {
    /// nil: no `match:`, catches everything that gets this far.
    public var matcher: Matcher?
    public var sinks: [String]
    /// Keep looking at later routes after this one matched.
    public var `continue`: Bool

    public init(matcher: Matcher?, sinks: [String], continue: Bool = false) {
        self.matcher = matcher
        self.sinks = sinks
        self.continue = `continue`
    }
}

/// The routes in order: the first match wins unless it says `continue: true`. Pure logic.
public struct Router: Sendable {
    public struct Decision: Sendable, Hashable {
        /// Sink names, each once, in the order the routes named them.
        public var sinks: [String]
        /// Indexes (0-based) of the routes that matched.
        public var matchedRoutes: [Int]
    }

    public var routes: [Route]

    public init(routes: [Route]) { self.routes = routes }

    public func route(_ event: JSONValue) -> Decision {
        var sinks: [String] = []
        var matched: [Int] = []
        for (index, route) in routes.enumerated() {
            guard route.matcher?.matches(event) ?? true else { continue }
            matched.append(index)
            for sink in route.sinks where !sinks.contains(sink) { sinks.append(sink) }
            if !route.continue { break }
        }
        return Decision(sinks: sinks, matchedRoutes: matched)
    }

    public func route(_ event: BridgeEvent) -> Decision { route(event.json) }
}
