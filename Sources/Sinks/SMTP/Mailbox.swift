/// An e-mail mailbox: an address with an optional display name, as in
/// `Graph Bridge <bridge@example.com>`, `"Doe, Jane" <jane@example.com>` or `ops@example.com`.
///
/// Addresses are ASCII `local@domain` (no SMTPUTF8); display names may be any Unicode and are
/// RFC 2047-encoded in headers when they need it.
public struct Mailbox: Sendable, Hashable, CustomStringConvertible {
    public var displayName: String?
    /// `local@domain`, without angle brackets.
    public var address: String

    /// A mailbox from parts already checked; see ``init(parsing:)`` for text.
    public init(displayName: String? = nil, address: String) {
        self.displayName = displayName
        self.address = address
    }

    /// Why a text is not a mailbox.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads `Name <local@domain>`, `"Quoted, Name" <local@domain>`, `<local@domain>` or
    /// `local@domain`.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw ParseError(description: "expected a mailbox, found an empty string") }
        if trimmed.hasSuffix(">") {
            guard let open = trimmed.lastIndex(of: "<") else {
                throw ParseError(description: "\(Self.quote(text)) has a '>' without a '<'")
            }
            let address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var name = String(trimmed[..<open]).trimmingSpaces()
            if name.hasPrefix("\"") {
                name = try Self.unquote(name, in: text)
            } else if let bad = name.first(where: { "<>\"@,;:".contains($0) }) {
                throw ParseError(
                    description: "the display name in \(Self.quote(text)) contains '\(bad)'; put the name in double quotes")
            }
            try Self.checkAddress(address, in: text)
            self.init(displayName: name.isEmpty ? nil : name, address: address)
        } else {
            try Self.checkAddress(trimmed, in: text)
            self.init(displayName: nil, address: trimmed)
        }
    }

    /// The domain part of the address.
    public var domain: String {
        address.lastIndex(of: "@").map { String(address[address.index(after: $0)...]) } ?? address
    }

    /// `Name <address>` or the bare address, unencoded (for logs and messages).
    public var description: String {
        guard let displayName else { return address }
        return "\(displayName) <\(address)>"
    }

    private static func unquote(_ name: String, in text: String) throws(ParseError) -> String {
        guard name.count >= 2, name.hasSuffix("\"") else {
            throw ParseError(description: "the quoted display name in \(quote(text)) is not closed")
        }
        var result = ""
        var escaped = false
        for character in name.dropFirst().dropLast() {
            if escaped {
                result.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                throw ParseError(description: "the display name in \(quote(text)) has an unescaped '\"' inside the quotes")
            } else {
                result.append(character)
            }
        }
        guard !escaped else { throw ParseError(description: "the quoted display name in \(quote(text)) ends in a lone backslash") }
        return result
    }

    /// `local@domain` with a dot-atom local part and a host name or `[literal]` domain, ASCII only.
    static func checkAddress(_ address: String, in text: String) throws(ParseError) {
        let example = "an address like name@example.com"
        guard let at = address.lastIndex(of: "@") else {
            throw ParseError(description: "expected \(example), found \(quote(text))")
        }
        let local = address[..<at]
        let domain = address[address.index(after: at)...]
        guard !local.isEmpty, !domain.isEmpty else {
            throw ParseError(description: "expected \(example), found \(quote(text))")
        }
        guard address.unicodeScalars.allSatisfy({ $0.isASCII }) else {
            throw ParseError(description: "\(quote(address)) has non-ASCII characters; only ASCII addresses are supported")
        }
        let atext: (Character) -> Bool = { character in
            character.isLetter || character.isNumber || "!#$%&'*+-/=?^_`{|}~".contains(character)
        }
        let localOK = local.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { atom in
            !atom.isEmpty && atom.allSatisfy(atext)
        }
        guard localOK else {
            throw ParseError(description: "the part before @ in \(quote(address)) is not a valid address (letters, digits, .!#$%&'*+-/=?^_`{|}~)")
        }
        let domainOK: Bool
        if domain.hasPrefix("[") {
            domainOK = domain.hasSuffix("]") && domain.count > 2 && !domain.dropFirst().dropLast().contains(where: { "[]\\ ".contains($0) })
        } else {
            domainOK = domain.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
                !label.isEmpty && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
            }
        }
        guard domainOK else {
            throw ParseError(description: "the domain in \(quote(address)) is not a host name like example.com or a [literal]")
        }
    }

    static func quote(_ text: String) -> String {
        "'\(text)'"
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
