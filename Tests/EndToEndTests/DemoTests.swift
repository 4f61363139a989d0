import Foundation
import Testing
import TestSupport

/// `graph-bridge demo`: the simulator and the bridge in one process. A simulated mail becomes a
/// Graph notification, the bridge fetches the mail's fields, and the file sink line has them.
@Suite("demo", .machine(.processes))
struct DemoTests {
    @Test("simulated mail → notification → enrichment → a file sink line with data.subject and data.from")
    func demo() async throws {
        let directory = TemporaryDirectory()
        let demo = try BridgeProcess(["demo", "--every", "0.3", "--count", "3", "--log-format", "json", "--log-level", "notice"], directory: directory.path)
        let audit = directory.file("demo-audit.jsonl")
        #expect(try await eventually(timeout: .seconds(30)) { jsonLines(audit).count >= 3 })
        let events = try jsonLines(audit).map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(events.count == 3)
        for event in events {
            let data = try #require(event["data"] as? [String: Any], "the event has no data: \(event)")
            #expect((data["subject"] as? String)?.isEmpty == false)
            #expect(((data["from"] as? [String: Any])?["emailAddress"] as? [String: Any])?["address"] as? String != nil)
            #expect((event["subscription"] as? [String: Any])?["name"] as? String == "inbox")
            #expect(event["changeType"] as? String == "created")
        }
        #expect(demo.log.contains("created Graph subscription"))
        demo.signal(SIGINT)
        #expect(await demo.waitForExit() == 0)
    }
}
