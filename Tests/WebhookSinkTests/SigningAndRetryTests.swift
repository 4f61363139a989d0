import SinkAPI
import Crypto
import CurlKit
import Foundation
import InMemoryLogging
import Logging
import TestSupport
import Testing
import WebhookSink

@Suite("Standard Webhooks signing", .machine(.processes))
struct SigningTests {
    /// Checks `request` the way a receiver following Standard Webhooks does.
    func verify(_ request: HTTPReceiver.RecordedRequest, key: [UInt8], eventID: String) throws {
        #expect(request.header("webhook-id") == eventID)
        let timestampText = try #require(request.header("webhook-timestamp"))
        let timestamp = try #require(Int64(timestampText))
        #expect(abs(Int64(Date().timeIntervalSince1970) - timestamp) <= 300)
        let signatureHeader = try #require(request.header("webhook-signature"))
        #expect(signatureHeader.hasPrefix("v1,"))
        let signature = try #require(Data(base64Encoded: String(signatureHeader.dropFirst(3))))
        var signed = Array("\(eventID).\(timestampText).".utf8)
        signed.append(contentsOf: request.body)
        #expect(HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: SymmetricKey(data: key)))
        // Tampering with one byte of the body breaks it.
        signed[signed.count - 1] ^= 1
        #expect(!HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: SymmetricKey(data: key)))
    }

    @Test("whsec_ secrets sign with the decoded bytes over id.timestamp.body")
    func whsec() async throws {
        try await withHTTPReceiver { receiver in
            let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let secret = "whsec_" + Data(key).base64EncodedString()
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .slack, secret: try WebhookSecret(secret)))
            let event = mailEvent(subject: nastySubject)
            try await under.deliver(event)
            try verify(receiver.onlyRequest(), key: key, eventID: event.id)
            #expect(!under.logText.joined().contains(secret))
        }
    }

    @Test("other secrets sign with their UTF-8 bytes")
    func plainSecret() async throws {
        try await withHTTPReceiver { receiver in
            let secret = "correct horse battery staple ü"
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), secret: try WebhookSecret(secret)))
            let event = mailEvent()
            try await under.deliver(event)
            try verify(receiver.onlyRequest(), key: Array(secret.utf8), eventID: event.id)
        }
    }

    @Test("secrets never show in descriptions or dumps")
    func redacted() throws {
        let secret = try WebhookSecret("hunter2-very-secret")
        let configuration = WebhookSink.Configuration(url: "https://example.test/hook", secret: secret)
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in [String(describing: secret), String(reflecting: secret), String(describing: configuration), dumped] {
            #expect(!text.contains("hunter2"))
        }
        #expect(throws: WebhookSecret.InvalidSecret.self) { try WebhookSecret("whsec_!!!not base64!!!") }
        #expect(throws: WebhookSecret.InvalidSecret.self) { try WebhookSecret("") }
    }
}

@Suite("webhook outcomes", .machine(.processes))
struct OutcomeTests {
    @Test("503 with Retry-After is retryable after that long; the retry succeeds with the same webhook-id")
    func retryThenSuccess() async throws {
        try await withHTTPReceiver { receiver in
            try await receiver.script("/hook", [["status": 503, "headers": ["Retry-After": "7"], "body": "busy, try later"]])
            let under = try SinkUnderTest(.init(url: receiver.url("/hook"), format: .slack, secret: try WebhookSecret("s3cret")))
            let event = mailEvent()
            let error = try await sinkError { try await under.deliver(event, attempt: 1) }
            #expect(error.disposition == .retry(after: .seconds(7)))
            #expect(error.message == "http://127.0.0.1:\(receiver.port) answered HTTP 503: busy, try later")
            try await under.deliver(event, attempt: 2)
            let requests = try receiver.recordedRequests()
            #expect(requests.count == 2)
            #expect(requests.map { $0.header("webhook-id") } == [event.id, event.id])
            #expect(requests[0].body == requests[1].body)
        }
    }

    @Test("408, 429 and 5xx are retryable", arguments: [408, 429, 500, 502, 504])
    func retryable(status: Int) async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/status/\(status)")))
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            #expect(error.disposition == .retry(after: nil))
            #expect(error.message.contains("HTTP \(status)"))
        }
    }

    @Test("400 is permanent, with the status and a bounded piece of the answer, and no URL path or secret")
    func badRequest() async throws {
        try await withHTTPReceiver { receiver in
            let long = String(repeating: "x", count: 5000)
            try await receiver.script("/services/T000/B000/XXXXSECRETPATH", [["status": 400, "body": "invalid_payload\n\(long)"]])
            let under = try SinkUnderTest(
                .init(url: receiver.url("/services/T000/B000/XXXXSECRETPATH?token=abc"), format: .slack, secret: try WebhookSecret("s3cret-key")))
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            #expect(error.disposition == .permanent)
            #expect(error.message.hasPrefix("http://127.0.0.1:\(receiver.port) answered HTTP 400: invalid_payload xxx"))
            #expect(error.message.count < 300)
            #expect(!error.message.contains("SECRETPATH") && !error.message.contains("token") && !error.message.contains("s3cret"))
        }
    }

    @Test("other 4xx and 3xx are permanent", arguments: [401, 403, 404, 410, 413, 422, 301, 302])
    func permanent(status: Int) async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/status/\(status)")))
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            #expect(error.disposition == .permanent)
        }
    }

    @Test("a receiver slower than timeout is a retryable failure")
    func timeout() async throws {
        try await withHTTPReceiver { receiver in
            let under = try SinkUnderTest(.init(url: receiver.url("/slow/5000"), timeout: .milliseconds(300)))
            let start = ContinuousClock.now
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            // The receiver would answer after 5 s with a 200: the timedOut error is the proof; the bound only catches a hang.
            #expect(ContinuousClock.now - start < .seconds(30))
            #expect(error.disposition == .retry(after: nil))
            #expect(error.message.contains("timedOut"))
        }
    }

    @Test("a refused connection is a retryable failure")
    func refused() async throws {
        try await withRefusingPort { port in
            let under = try SinkUnderTest(.init(url: "http://127.0.0.1:\(port)/hook"))
            let error = try await sinkError { try await under.deliver(mailEvent()) }
            #expect(error.disposition == .retry(after: nil))
            #expect(error.message.hasPrefix("request to http://127.0.0.1:\(port) failed: couldNotConnect"))
        }
    }

    @Test("insecureSkipVerify is logged loudly at start")
    func insecureWarning() throws {
        let under = try SinkUnderTest(.init(url: "https://127.0.0.1:1/hook", insecureSkipVerify: true))
        let warnings = under.log.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.message.description.contains("verification is OFF") == true)
        #expect(try SinkUnderTest(.init(url: "https://127.0.0.1:1/hook")).log.entries.isEmpty)
    }
}
