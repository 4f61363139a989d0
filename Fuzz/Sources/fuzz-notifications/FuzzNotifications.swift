// libFuzzer entry point for what Graph POSTs: every input goes through the envelope reader and
// the JSON parser; a document that parses must also survive the writer (parse(write(v)) == v,
// byte-stable), and every item the reader accepts must survive the journal's event encoding.
// Any trap (a Swift runtime check, precondition, out-of-bounds) is a crash libFuzzer reports.
import BridgeCore
import CLibFuzzer
import Foundation

/// A fixed clock and subscription, so an accepted item becomes the same event on every run.
private let receivedAt = Date(timeIntervalSince1970: 1_767_225_600.123)
private let subscription = SubscriptionEntry(
    name: "fuzz", id: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07", resource: "users/fuzz/messages", clientState: "fuzz-state")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNotifications(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    checkEnvelope(bytes)
    checkRoundTrip(bytes)
    return 0
}

/// The envelope reader throws only `EnvelopeError` (typed throws); what it accepts must obey its contract.
private func checkEnvelope(_ bytes: UnsafeBufferPointer<UInt8>) {
    guard let collection = try? ChangeNotificationCollection(body: bytes) else { return }
    for case let item? in collection.items {
        require(!item.subscriptionId.isEmpty, "an accepted item has an empty subscriptionId")
        require(
            (item.changeType != nil) != (item.lifecycleEvent != nil), "an accepted item has both or neither of changeType and lifecycleEvent")
        if let resourceData = item.resourceData { require(resourceData.objectValue != nil, "resourceData kept although not an object") }
        let entry = NotificationIntake.entry(for: item, subscription: subscription, validationTokens: collection.validationTokens, now: receivedAt)
        // What the journal stores must read back as the same event (the store relies on it).
        let stored = entry.event.encoded()
        guard let restored = try? BridgeEvent(encoded: stored) else {
            fatalError("a journaled event does not parse back: \(String(decoding: stored, as: UTF8.self).debugDescription)")
        }
        require(restored == entry.event, "a journaled event reads back different: \(String(decoding: stored, as: UTF8.self).debugDescription)")
        if let attachment = entry.attachment {
            require((try? JSONParser.parse(attachment.serialized(), maxDepth: 256)) == attachment, "an attachment does not round-trip")
        }
    }
}

/// A document that parses is written back and parsed again: same value, and writing is stable.
private func checkRoundTrip(_ bytes: UnsafeBufferPointer<UInt8>) {
    guard let value = try? JSONParser.parse(bytes) else { return }
    let written = value.serialized()
    let reparsed: JSONValue
    do {
        reparsed = try JSONParser.parse(written)
    } catch {
        fatalError("serialized JSON does not parse (\(error)): \(String(decoding: written, as: UTF8.self).debugDescription)")
    }
    require(reparsed == value, "round trip changed the value: \(String(decoding: written, as: UTF8.self).debugDescription)")
    require(reparsed.serialized() == written, "writing is not stable: \(String(decoding: written, as: UTF8.self).debugDescription)")
}

/// A failed property: `fatalError` keeps its message in release builds (a `precondition` would not),
/// and libFuzzer then writes the input that broke it.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// The process entry point. SwiftPM links every executable with `main` defined as `<module>_main`
/// (so that tests could link it), which `-parse-as-library` leaves undefined; libFuzzer's driver
/// takes over from here exactly as its own `main` would.
@_cdecl("fuzz_notifications_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzNotifications(data, size) }
}
