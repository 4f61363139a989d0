/// The longest lifetime Graph grants a subscription, by resource (graph-protocol section 1.3).
/// Asking for more fails (or "will fail in the future"), so requests are capped at this.
public enum ResourceLifetime {
    /// The maximum for `resource`, with or without rich notifications.
    public static func maximum(for resource: String, includeResourceData: Bool) -> Duration {
        let path = resource.lowercased().trimmingPrefix("/")
        func minutes(_ count: Int64) -> Duration { .seconds(count * 60) }
        if path.contains("presence") { return minutes(60) }
        if path.contains("shifts") || path.contains("schedule/") { return minutes(360) }
        if path.hasPrefix("teams") || path.hasPrefix("chats") || path.contains("/chats") || path.contains("onlinemeetings")
            || path.contains("channels") || path.contains("getallmessages")
        {
            return minutes(4320)
        }
        if path.hasPrefix("security/alerts") || path.contains("approval") { return minutes(43_200) }
        if path.contains("callrecords") || path.contains("conversations") || path.contains("todo") || path.contains("print") {
            return minutes(4230)
        }
        if path.contains("messages") || path.contains("mailfolders") || path.contains("events") || path.contains("contacts") || path.contains("calendar") {
            return includeResourceData ? minutes(1440) : minutes(4230)
        }
        if path.hasPrefix("drives") || path.contains("/drive") || path.hasPrefix("sites") || path.contains("/lists") { return minutes(42_300) }
        if path.hasPrefix("users") || path.hasPrefix("groups") || path.hasPrefix("directory") { return minutes(41_760) }
        // Unknown resources get the shortest common maximum: a renewal too many is harmless, a refused create is not.
        return minutes(4230)
    }
}

/// When to renew: Graph's lifetime is measured from the last create or renewal; renew once half
/// of it has passed (at the latest with a quarter left, as the contract requires), never later
/// than a minute before expiry.
public enum RenewalSchedule {
    public static func renewalDate(renewedAt: Double, expiration: Double) -> Double {
        let lifetime = max(0, expiration - renewedAt)
        let half = renewedAt + lifetime / 2
        return lifetime > 240 ? min(half, expiration - 60) : half
    }
}
