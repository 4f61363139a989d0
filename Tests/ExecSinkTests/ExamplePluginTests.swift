import SinkAPI
import ExecSink
import Foundation
import TestSupport
import Testing

/// The plugins in examples/plugins, run for real through the sink.
@Suite("exec sink: example plugins", .machine(.processes))
struct ExamplePluginTests {
    @Test("log-to-file.sh appends each event once, exactly as its JSON line")
    func logToFile() async throws {
        let directory = TemporaryDirectory()
        let output = directory.file("events.jsonl")
        let first = event("first")
        let second = event("second \"quoted\" and ünïcode")
        try await withExecSink(command: [Paths.examples + "/log-to-file.sh", output]) { sink, log in
            #expect(await sink.send(first) == .ok)
            #expect(await sink.send(second) == .ok)
            #expect(await sink.send(first) == .ok)  // a redelivery: answered, not written again
            #expect(await log.first { $0.message == "log-to-file: appending events to \(output)" } != nil)
        }
        let written = try String(contentsOfFile: output, encoding: .utf8)
        let expected = [first, second].map { String(decoding: $0.encoded(), as: UTF8.self) + "\n" }.joined()
        #expect(written == expected)
    }

    @Test("to-slack.py posts a Slack message, retries a 503, answers a redelivery without posting, drops a 404")
    func toSlack() async throws {
        try await withHTTPReceiver { receiver in
            let mail = event("Quarterly numbers")
            try await withExecSink(
                command: [Paths.examples + "/to-slack.py"],
                environment: ["SLACK_WEBHOOK_URL": receiver.url("/fail-first/1/hook")]
            ) { sink, _ in
                #expect(await sink.send(mail) == .retry("the plugin asked to retry: Slack answered 503 Service Unavailable"))
                #expect(await sink.send(mail) == .ok)
                #expect(await sink.send(mail) == .ok)
            }
            let requests = try receiver.recordedRequests()
            #expect(requests.count == 2)
            let body = try #require(requests.last?.body)
            let json = try JSONParser.parse(body)
            #expect(json["text"]?.stringValue == "New mail from Bob: Quarterly numbers")
            #expect(requests.last?.header("Content-Type") == "application/json")

            try await withExecSink(
                command: [Paths.examples + "/to-slack.py"],
                environment: ["SLACK_WEBHOOK_URL": receiver.url("/status/404")]
            ) { sink, _ in
                let outcome = await sink.send(event("<b>not</b> for this channel"))
                #expect(outcome == .drop("the plugin dropped the event: Slack answered 404 Not Found"))
            }
        }
    }
}

@Suite("exec sink: plugin docs", .machine(.processes))
struct PluginDocsTests {
    @Test("docs/plugins.md shows each example plugin exactly as it is in examples/plugins")
    func listings() throws {
        let doc = try String(contentsOfFile: Paths.root + "/docs/plugins.md", encoding: .utf8)
        for name in ["to-slack.py", "log-to-file.sh"] {
            let marker = "<!-- example: examples/plugins/\(name) -->\n```"
            let start = try #require(doc.range(of: marker), "no listing of \(name)")
            let afterFence = try #require(doc[start.upperBound...].firstIndex(of: "\n"))
            let body = doc[doc.index(after: afterFence)...]
            let end = try #require(body.range(of: "\n```\n"))
            let listing = String(body[..<end.lowerBound]) + "\n"
            let file = try String(contentsOfFile: Paths.examples + "/" + name, encoding: .utf8)
            #expect(listing == file, "docs/plugins.md's listing of \(name) differs from the file")
            #expect(FileManager.default.isExecutableFile(atPath: Paths.examples + "/" + name))
        }
    }
}
