/// `${VAR}` and `${VAR:-default}` in scalar values.
///
/// The default replaces a variable that is unset or empty; `$${` is a literal `${`; any other `$`
/// is kept as it is. Variable names are `[A-Za-z_][A-Za-z0-9_]*`. Defaults are taken literally
/// (no nested `${}`) and end at the first `}`.
enum Interpolation {
    /// The text with every variable replaced, or a message saying what is wrong.
    static func expand(_ text: String, environment: [String: String]) -> Result<String, InterpolationError> {
        guard text.utf8.contains(UInt8(ascii: "$")) else { return .success(text) }
        var output = ""
        var rest = text[...]
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let afterDollar = rest[rest.index(after: dollar)...]
            if afterDollar.hasPrefix("${") {
                output += "${"
                rest = afterDollar.dropFirst(2)
                continue
            }
            guard afterDollar.hasPrefix("{") else {
                output += "$"
                rest = afterDollar
                continue
            }
            let body = afterDollar.dropFirst()
            guard let close = body.firstIndex(of: "}") else {
                return .failure(.unterminated)
            }
            let reference = body[..<close]
            rest = body[body.index(after: close)...]
            let name: Substring
            let fallback: Substring?
            if let colon = reference.firstIndex(of: ":") {
                name = reference[..<colon]
                let tail = reference[colon...]
                guard tail.hasPrefix(":-") else {
                    return .failure(.malformed(String(reference)))
                }
                fallback = tail.dropFirst(2)
            } else {
                name = reference
                fallback = nil
            }
            guard isVariableName(name) else {
                return .failure(.badName(String(name), reference: String(reference)))
            }
            let value = environment[String(name)]
            if let fallback {
                output += (value?.isEmpty ?? true) ? String(fallback) : value!
            } else if let value {
                output += value
            } else {
                return .failure(.unset(String(name)))
            }
        }
        output += rest
        return .success(output)
    }

    /// True when the text has a `${` that `expand` would act on.
    static func hasReference(_ text: String) -> Bool {
        text.contains("${")
    }

    private static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII, first == "_" || first.properties.isAlphabetic else {
            return false
        }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0))
        }
    }
}

enum InterpolationError: Error, Equatable {
    case unset(String)
    case unterminated
    case malformed(String)
    case badName(String, reference: String)

    var message: String {
        switch self {
        case .unset(let name):
            "environment variable \(name) is not set (set it, or write ${\(name):-default})"
        case .unterminated:
            "unterminated '${' (close it with '}', or write '$${' for a literal '${')"
        case .malformed(let reference):
            "cannot read '${\(reference)}': write ${NAME} or ${NAME:-default}"
        case .badName(let name, let reference):
            "'\(name)' in '${\(reference)}' is not a variable name (letters, digits and _, not starting with a digit)"
        }
    }
}
