import SinkAPI
import CurlKit
import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing
import WebhookSink

/// A subject with everything that breaks naive escaping.
let nastySubject = "Q3 \"numbers\" \\ C:\\path\nline two\r\n\ttab <b>bold</b> & more — Grüße 🚀 \u{0001}end"

/// One client for every test, as the bridge has one for every sink.
let sharedClient = CurlClient()

func mailEvent(id: String = EventID.make(), subject: String = "Quarterly numbers") -> BridgeEvent {
    BridgeEvent(
        id: id,
        receivedAt: Date(timeIntervalSince1970: 1_796_000_000.123),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("2")]),
        tenantId: "tenant-1",
        data: .object([
            "subject": .string(subject),
            "from": .object(["emailAddress": .object(["name": .string("Bob Example"), "address": .string("bob@contoso.com")])]),
            "importance": .string("high"),
        ])
    )
}

/// A sink plus the log it writes to.
struct SinkUnderTest {
    let sink: WebhookSink
    let log: InMemoryLogHandler

    init(_ configuration: WebhookSink.Configuration) throws {
        let log = InMemoryLogHandler()
        self.log = log
        let logger = Logger(label: "test", factory: { _ in log })
        sink = try WebhookSink(
            name: "chat", configuration: configuration, context: SinkContext(logger: logger, transport: sharedClient))
    }

    func deliver(_ event: BridgeEvent, attempt: Int = 1) async throws {
        try await sink.deliver(event, attempt: DeliveryAttempt(number: attempt, deliveryID: 1))
    }

    /// Everything logged, as one text per entry (message and metadata).
    var logText: [String] {
        log.entries.map { "\($0.level) \($0.message) \($0.metadata)" }
    }
}

extension HTTPReceiver {
    /// The only recorded request (fails the test when there is not exactly one).
    func onlyRequest(sourceLocation: SourceLocation = #_sourceLocation) throws -> RecordedRequest {
        let requests = try recordedRequests()
        try #require(requests.count == 1, "expected one request, got \(requests.count)", sourceLocation: sourceLocation)
        return requests[0]
    }

    /// The next `responses` for requests to `path` (the receiver's /_control/script).
    func script(_ path: String, _ responses: [[String: Any]]) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["path": path, "responses": responses])
        let response = try await sharedClient.execute(
            HTTPRequest(method: "POST", url: url("/_control/script"), headers: [("Content-Type", "application/json")], body: Array(body)))
        try #require(response.status == 200)
    }
}

extension HTTPReceiver.RecordedRequest {
    /// The body parsed with the bridge's strict JSON parser.
    var json: JSONValue {
        get throws { try JSONParser.parse(body) }
    }
}

/// The error `body` throws, as a `SinkError`.
func sinkError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async throws -> SinkError {
    do {
        try await body()
    } catch let error as SinkError {
        return error
    } catch {
        Issue.record("expected a SinkError, got \(error)", sourceLocation: sourceLocation)
        throw error
    }
    Issue.record("expected a SinkError, nothing was thrown", sourceLocation: sourceLocation)
    throw CancellationError()
}
