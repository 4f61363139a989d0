import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Testing

/// `resync:` on a subscription: which resources Graph's delta query covers, refused where it does not, positioned.
@Suite("resync: configuration")
struct ResyncConfigurationTests {
    static func yaml(resource: String, resync: String = "delta", manage: String = "") -> String {
        """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: s3cret
        server:
          publicUrl: https://bridge.example.com/
        subscriptions:
          - name: inbox
            resource: \(resource)
            changeTypes: [created, updated, deleted]
            resync: \(resync)
        sinks:
          rec: { type: recording }
        routes:
          - to: [rec]

        """
    }

    @Test("resync: delta loads for the messages of a folder, events, contacts, users, groups and drive items", arguments: [
        "users/alice@contoso.com/mailFolders('Inbox')/messages", "me/mailFolders/inbox/messages", "users/alice@contoso.com/events",
        "users/alice@contoso.com/calendars/AAMk/events", "me/contacts", "users/x/contactFolders/abc/contacts", "users", "groups",
        "drives/b!abc/root", "me/drive/root",
    ])
    func supported(resource: String) throws {
        let configuration = try ConfigurationTests.load(Self.yaml(resource: resource)).get()
        #expect(configuration.subscriptions.first?.resync == .delta)
    }

    @Test("no resync: key means none")
    func defaultIsNone() throws {
        let yaml = Self.yaml(resource: "users").replacingOccurrences(of: "    resync: delta\n", with: "")
        #expect(try ConfigurationTests.load(yaml).get().subscriptions.first?.resync == SubscriptionDeclaration.Resync.none)
    }

    @Test("resync: delta on a resource delta does not cover is refused at the resync: value")
    func unsupported() {
        let errors = ConfigurationTests.errors(Self.yaml(resource: "users/alice@contoso.com/messages"))
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:11:13: subscription 'inbox': resync: delta needs the messages of one folder") == true)
        let teams = ConfigurationTests.errors(Self.yaml(resource: "teams/getAllMessages"))
        #expect(teams == [
            "bridge.yaml:11:13: subscription 'inbox': resync: delta is not supported for resource teams/getAllMessages: delta covers the messages of a folder, events, contacts, users, groups and drive items"
        ])
    }

    @Test("resync: delta on a receive-only subscription is refused: the bridge never saw its create")
    func receiveOnly() {
        let yaml = """
            subscriptions:
              - name: feed
                manage: false
                id: 11111111-2222-3333-4444-555555555555
                clientState: s3cret
                resync: delta
            sinks:
              rec: { type: recording }
            routes:
              - to: [rec]

            """
        let errors = ConfigurationTests.errors(yaml)
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:6:13: receive-only subscription 'feed': resync: delta needs a managed subscription") == true)
    }

    @Test("an unknown resync: mode names the allowed ones")
    func unknownMode() {
        let errors = ConfigurationTests.errors(Self.yaml(resource: "users", resync: "poll"))
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("bridge.yaml:11:13: expected one of none, delta") == true)
    }

    @Test("delta paths: the resource and /delta; items named under the collection")
    func paths() {
        #expect(DeltaResource.deltaPath(for: "/users/a/mailFolders('Inbox')/messages?$select=subject") == "/users/a/mailFolders('Inbox')/messages/delta")
        #expect(DeltaResource.itemResource(subscription: "users/a/mailFolders('Inbox')/messages", id: "M1") == "users/a/mailFolders('Inbox')/messages/M1")
        #expect(DeltaResource.itemResource(subscription: "drives/d1/root", id: "I1") == "drives/d1/items/I1")
        #expect(DeltaResource.itemResource(subscription: "users", id: "U1") == "users/U1")
    }
}
