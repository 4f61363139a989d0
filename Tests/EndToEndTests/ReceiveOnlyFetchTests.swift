import CurlKit
import Foundation
import GraphSimulator
import TestSupport
import Testing

/// `fetch:` on a receive-only subscription: the bridge reads the changed item with its own sign-in
/// (`graph:`), inside the subscription's declared resource only.
@Suite("receive-only fetch", .machine(.processes))
struct ReceiveOnlyFetchTests {
    @Test("a receive-only subscription with fetch: and graph: gets the item's fields as data; an item outside its resource is routed without")
    func fetched() async throws {
        try await withInProcessSimulator { simulator in
            let directory = TemporaryDirectory()
            let mail = try simulator.createMessage(MessageContent(subject: "made elsewhere, read here"), in: "alice@contoso.com").message
            let other = try simulator.createMessage(MessageContent(subject: "bob's, not this feed's"), in: "bob@contoso.com").message
            directory.write(
                "bridge.yaml",
                simulator.graphSection + serverConfigSection() + """
                state: { path: state.sqlite }
                subscriptions:
                  - name: feed
                    manage: false
                    id: \(EndToEndTests.subscriptionID)
                    clientState: secretClientValue
                    resource: users/alice@contoso.com/mailFolders('Inbox')/messages
                    fetch: [subject]
                sinks:
                  audit: { type: file, path: audit.jsonl }
                routes:
                  - to: [audit]

                """)
            let check = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
            #expect(check.0 == 0, "\(check.2)")
            let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
            let port = try await bridge.port()
            let client = CurlClient()
            func notification(_ message: SimulatedMessage, etag: Int) -> [UInt8] {
                Array(
                    #"{"value":[{"subscriptionId":"\#(EndToEndTests.subscriptionID)","clientState":"secretClientValue","changeType":"created","resource":"Users/\#(message.userID)/Messages/\#(message.id)","resourceData":{"@odata.etag":"\#(etag)","id":"\#(message.id)"}}]}"#
                        .utf8)
            }
            #expect(try await EndToEndTests.post(client, port: port, body: notification(mail, etag: 1)) == 202)
            #expect(try await EndToEndTests.post(client, port: port, body: notification(other, etag: 2)) == 202)
            let delivered = try await eventually { jsonLines(directory.file("audit.jsonl")).count >= 2 }
            #expect(delivered, "\(bridge.log)")
            let lines = jsonLines(directory.file("audit.jsonl"))
            let fetched = lines.first { $0.contains(mail.id) }
            #expect(fetched?.contains(#""subject":"made elsewhere, read here""#) == true, "\(lines)")
            // Bob's mailbox is not the feed's: read in alice's mailbox by its id, it is not there;
            // either way nothing of bob's mail reaches the event.
            let outside = lines.first { $0.contains(other.id) }
            #expect(outside != nil && outside?.contains("bob's, not this feed's") == false, "\(lines)")
            bridge.signal(SIGTERM)
            #expect(await bridge.waitForExit() == 0)
            await client.shutdown()
        }
    }
}
