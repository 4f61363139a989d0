@testable import BridgeGraph
import Testing

/// `fetch:` reads only inside the subscription's own resource.
@Suite("fetch scope")
struct FetchScopeTests {
    static let inbox = "users/alice@contoso.com/mailFolders('Inbox')/messages"

    @Test("Graph's own shape for a mail reads the item in the subscription's mailbox")
    func outlookItem() {
        #expect(FetchScope.path(for: "Users/6f1e/Messages/AAMkAGI2=", subscription: Self.inbox) == .success("users/alice@contoso.com/messages/AAMkAGI2="))
        #expect(FetchScope.path(for: "Users/6f1e/Events/E1", subscription: "users/alice@contoso.com/events") == .success("users/alice@contoso.com/events/E1"))
        #expect(FetchScope.path(for: "Users/6f1e/Messages/M1", subscription: "me/mailFolders('Inbox')/messages") == .success("me/messages/M1"))
        #expect(FetchScope.path(for: "Users/6f1e/Messages/M1", subscription: "users/alice@contoso.com/messages?$select=subject") == .success("users/alice@contoso.com/messages/M1"))
        // Another mailbox named in the notification: only the item id is taken; the read stays in the
        // subscription's mailbox (where a foreign id is simply not found).
        #expect(FetchScope.path(for: "Users/bob/Messages/M1", subscription: "users/alice/messages") == .success("users/alice/messages/M1"))
    }

    @Test("a path under the subscription's resource is read as it is, whatever its case")
    func underTheResource() {
        #expect(FetchScope.path(for: "Users/u1/Messages/M1", subscription: "users/U1/messages") == .success("Users/u1/Messages/M1"))
        #expect(FetchScope.path(for: "groups/g1", subscription: "groups") == .success("groups/g1"))
    }

    @Test("anything else is outside", arguments: [
        ("Users/6f1e/Events/E1", inbox),                      // another collection of the mailbox
        ("Users/6f1e/Messages/M1/attachments", inbox),        // deeper than an item
        ("groups/g1", inbox),
        ("users/u10/messages/M1", "users/u1"),                // a prefix of a segment is not under it
    ])
    func outside(_ resource: String, _ subscription: String) {
        #expect(FetchScope.path(for: resource, subscription: subscription) == .failure(.outside))
    }

    @Test("paths that could escape are unsafe", arguments: [
        "Users/6f1e/Messages/../../groups", "Users/6f1e/Messages/M1?$expand=x", "Users/6f1e/Messages/M1#x", "Users/6f1e/Messages/%2e%2e",
        "Users/6f1e/Messages/M\\1", "Users/6f1e//Messages/M1", "/Users/6f1e/Messages/M1", "Users/6f1e/Messages/M 1", "Users/6f1e/Messages/M\n1", "",
    ])
    func unsafe(_ resource: String) {
        #expect(FetchScope.path(for: resource, subscription: Self.inbox) == .failure(.unsafe))
    }
}
