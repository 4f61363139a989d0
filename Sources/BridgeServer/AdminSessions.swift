import BridgeCore
import Foundation
import Synchronization

/// Browser sign-in to the admin listener when `server.admin.token` is set.
///
/// A browser cannot send `Authorization: Bearer` on a page load, and `EventSource` (the status
/// page's `/events`) can set no header at all. So the page offers a form: the token is POSTed once
/// to `/login` (never put in a URL, where it would end up in history and logs), and a correct one
/// gets a session cookie: 32 random bytes, unrelated to the token, `HttpOnly` (no script can read
/// it), `SameSite=Strict` (no other site's page can send it), `Path=/`, valid for `lifetime`
/// (12 hours) and held in memory only (a restart signs everyone out). A request is let in with
/// the Bearer token or with a live session cookie; both are compared in constant time.
final class AdminSessions: Sendable {
    static let cookieName = "graph_bridge_admin"
    /// Sessions beyond this many push out the oldest.
    static let limit = 64

    let lifetime: TimeInterval
    private let sessions = Mutex<[(id: [UInt8], expires: Date)]>([])

    init(lifetime: TimeInterval = 12 * 3600) {
        self.lifetime = lifetime
    }

    /// A new session; its id is the cookie value.
    func open(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        sessions.withLock { sessions in
            sessions.removeAll { $0.expires <= now }
            sessions.append((Array(id.utf8), now.addingTimeInterval(lifetime)))
            if sessions.count > Self.limit { sessions.removeFirst(sessions.count - Self.limit) }
        }
        return id
    }

    /// Whether `cookieHeader` (a `Cookie:` header) carries a live session.
    func admits(cookieHeader: String?, now: Date = Date()) -> Bool {
        guard let presented = Self.cookie(named: Self.cookieName, in: cookieHeader) else { return false }
        let bytes = Array(presented.utf8)
        return sessions.withLock { sessions in
            // Every live session is compared, so the time taken says nothing about which matched.
            var found = false
            for session in sessions where session.expires > now {
                if constantTimeEquals(bytes, session.id) { found = true }
            }
            return found
        }
    }

    /// The `Set-Cookie` value for a session.
    func setCookie(_ id: String) -> String {
        "\(Self.cookieName)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(lifetime))"
    }

    /// The value of cookie `name` in a `Cookie:` header.
    static func cookie(named name: String, in header: String?) -> Substring? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            if trimmed.hasPrefix(name + "=") { return trimmed.dropFirst(name.count + 1) }
        }
        return nil
    }

    /// The value of `name` in an `application/x-www-form-urlencoded` body (`+` is a space).
    static func formValue(named name: String, in body: String) -> String? {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == name else { continue }
            let raw = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
            return raw.removingPercentEncoding ?? raw
        }
        return nil
    }
}
