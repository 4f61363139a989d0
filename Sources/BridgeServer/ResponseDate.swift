import BridgeCore
import Foundation
import Synchronization

/// The `Date` header's value (IMF-fixdate, RFC 9110 §5.6.7), made once a second and shared by
/// every connection: formatting a date per answer would cost more than the rest of a 202.
enum ResponseDate {
    private static let cache = Mutex<(second: Int64, text: String)>((-1, ""))

    static func now() -> String { text(forSecond: Int64(Date().timeIntervalSince1970.rounded(.down))) }

    static func text(forSecond second: Int64) -> String {
        if let cached = cache.withLock({ $0.second == second ? $0.text : nil }) { return cached }
        let text = format(second)
        cache.withLock { $0 = (second, text) }
        return text
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since 1970.
    static func format(_ seconds: Int64) -> String { utcDayAndTime(seconds) + " GMT" }
}
