import BridgeCore
import BridgeConfig

/// One entry of `routes:` as written, with positions for reference errors.
struct RouteDeclaration: Decodable {
    var matcher: Matcher?
    var to: [Located<String>]
    var `continue`: Bool
    var mark: ConfigMark?
    /// Match keys that can never lead anywhere in an event: the message and the key's position.
    var pathProblems: [(message: String, mark: ConfigMark)] = []

    enum CodingKeys: String, CodingKey { case match, to, `continue` }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mark = decoder.configNode?.mark
        let match = try container.decodeIfPresent(MatcherDeclaration.self, forKey: .match)
        matcher = match?.matcher
        pathProblems = match?.pathProblems ?? []
        to = try container.decode([Located<String>].self, forKey: .to)
        `continue` = try container.decodeIfPresent(Bool.self, forKey: .continue) ?? false
        if to.isEmpty { throw decoder.configError("a route needs at least one sink in to:") }
    }

    var route: Route { Route(matcher: matcher, sinks: to.map(\.value), continue: `continue`) }
}

/// `match:`: dotted event paths to values, all of which must hold.
struct MatcherDeclaration: Decodable {
    var matcher: Matcher
    /// Keys whose first segment is no field of the event (SPEC section 6): a typo that would
    /// make the route never match. Reported by the loader at the key, the route still decodes.
    var pathProblems: [(message: String, mark: ConfigMark)] = []

    init(from decoder: any Decoder) throws {
        guard case .mapping(let pairs, _) = decoder.configNode else {
            throw decoder.configError("match: must be a mapping of event paths to values, e.g. { subscription: inbox }")
        }
        // Decoding as a dictionary marks every path as a known key; the pairs keep the file's order.
        let values = try decoder.singleValueContainer().decode([String: MatchValueDeclaration].self)
        var conditions: [Matcher.Condition] = []
        for pair in pairs {
            guard let value = values[pair.key] else { continue }
            let path = EventPath(pair.key)
            if let problem = path.problem(suggest: ConfigDecoder.suggestion(for:among:)) {
                pathProblems.append((problem, pair.keyMark))
            }
            conditions.append(Matcher.Condition(path: path, value: value.value))
        }
        matcher = Matcher(conditions)
    }
}

/// A string (exact, or a glob with `*`), a list (any of), `{regex: ...}` or `{not: VALUE}`.
struct MatchValueDeclaration: Decodable {
    var value: MatchValue

    enum CodingKeys: String, CodingKey { case regex, not }

    init(from decoder: any Decoder) throws {
        switch decoder.configNode {
        case .sequence:
            let items = try decoder.singleValueContainer().decode([MatchValueDeclaration].self)
            value = .anyOf(items.map(\.value))
        case .mapping(let pairs, _):
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard pairs.count == 1 else {
                throw decoder.configError("a matcher value mapping holds exactly one of regex: or not:")
            }
            if let pattern = try container.decodeIfPresent(String.self, forKey: .regex) {
                do {
                    value = .regex(try RegexPattern(pattern))
                } catch {
                    throw decoder.configError("invalid regular expression '\(pattern)': \(error)")
                }
            } else if let inner = try container.decodeIfPresent(MatchValueDeclaration.self, forKey: .not) {
                value = .not(inner.value)
            } else {
                throw decoder.configError("a matcher value mapping holds exactly one of regex: or not:")
            }
        default:
            value = .string(try decoder.singleValueContainer().decode(String.self))
        }
    }
}
