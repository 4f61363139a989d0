public import BridgeCore
public import GraphClient
public import Logging
public import Metrics

/// Rich notifications (SPEC section 9), after the 202: checks every `validationTokens` JWT of the
/// POST an event came in, decrypts the item's `encryptedContent`, and puts the resource's JSON in
/// the event's `data`. An event that fails any check is dropped (nil): logged with the reason and
/// counted in `graph_bridge_rich_notifications_rejected_total{reason}`, never routed with
/// unverified or missing content. Events without the attachment pass through untouched.
///
/// One case is not a failed check: the authority's signing keys could not be fetched (its
/// outage, or ours). Nothing proves the item forged, and its clientState was checked at intake,
/// so the event is routed *without* `data` (the content stays encrypted, never shown unverified),
/// logged and counted in `graph_bridge_rich_notifications_undecrypted_total{reason}` rather than
/// lost.
public struct RichNotificationEnricher: EventEnricher {
    let validator: ValidationTokenValidator
    let decryptor: RichContentDecryptor
    let logger: Logger
    let metrics: any MetricsFactory

    /// - Parameter metrics: where the counters go; the process's bootstrapped factory unless a test gives its own.
    public init(
        validator: ValidationTokenValidator, decryptor: RichContentDecryptor, logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.validator = validator
        self.decryptor = decryptor
        self.logger = logger
        self.metrics = metrics
    }

    public func enrich(_ pending: PendingEvent) async -> BridgeEvent? {
        // The intake attaches `validationTokens` to every change item of a POST with encrypted content.
        guard let attachment = pending.attachment, let tokens = attachment["validationTokens"]?.arrayValue else { return pending.event }
        var event = pending.event
        do throws(RichNotificationError) {
            try await validator.validate(tokens.compactMap(\.stringValue))
            if let content = attachment["encryptedContent"] {
                let encrypted = try Self.encryptedContent(content)
                let plaintext = try decryptor.decrypt(encrypted)
                do {
                    event.data = try JSONParser.parse(plaintext, maxDepth: 128)
                } catch {
                    throw .notJSON(error.description)
                }
                Counter(
                    // By key too: once a rotated-away id stops counting, its `previous:` key pair can go.
                    label: "graph_bridge_rich_notifications_decrypted_total",
                    dimensions: [("subscription", event.subscription.name), ("encryption_id", encrypted.encryptionCertificateId)],
                    factory: metrics
                )
                .increment()
            }
            return event
        } catch where error.isSigningKeyOutage {
            Counter(label: "graph_bridge_rich_notifications_undecrypted_total", dimensions: [("reason", error.reason)], factory: metrics).increment()
            logger.warning(
                "routing a rich notification without its content: Graph's signing keys could not be fetched to check it",
                metadata: ["bridge.event": "\(event.id)", "bridge.subscription": "\(event.subscription.name)", "error": "\(error.detail)"])
            return pending.event
        } catch {
            Counter(label: "graph_bridge_rich_notifications_rejected_total", dimensions: [("reason", error.reason)], factory: metrics).increment()
            logger.warning(
                "dropped a rich notification that failed its checks",
                metadata: [
                    "bridge.event": "\(event.id)", "bridge.subscription": "\(event.subscription.name)",
                    "bridge.reason": "\(error.reason)", "error": "\(error.detail)",
                ])
            return nil
        }
    }

    /// Reads the item's `encryptedContent` object; every field but the thumbprint is required.
    static func encryptedContent(_ json: JSONValue) throws(RichNotificationError) -> EncryptedContent {
        guard let data = json["data"]?.stringValue, let dataKey = json["dataKey"]?.stringValue,
            let dataSignature = json["dataSignature"]?.stringValue, let id = json["encryptionCertificateId"]?.stringValue
        else { throw .malformedContent("encryptedContent lacks data, dataKey, dataSignature or encryptionCertificateId") }
        return EncryptedContent(
            data: data, dataKey: dataKey, dataSignature: dataSignature, encryptionCertificateId: id,
            encryptionCertificateThumbprint: json["encryptionCertificateThumbprint"]?.stringValue)
    }
}
