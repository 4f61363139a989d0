import CurlKit
import Foundation
import Testing
import TestSupport

/// `server.tls` with the real executable: `check` reads the files, `run` serves HTTPS.
@Suite("server.tls end to end", .serialized, .machine(.processes))
struct TLSRunTests {
    static func config(certificate: String, key: String) -> String {
        EndToEndTests.config().replacingOccurrences(
            of: "  maxBodyBytes: 64KiB\n", with: "  maxBodyBytes: 64KiB\n  tls: { certificate: \(certificate), key: \(key) }\n")
    }

    @Test("run serves the notification endpoint over HTTPS and journals what it acknowledges")
    func https() async throws {
        let directory = TemporaryDirectory()
        let pair = try await makeSelfSignedCertificate(in: directory.path, name: "server")
        directory.write("bridge.yaml", Self.config(certificate: "server.pem", key: "server-key.pem"))
        let check = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(check.0 == 0, "\(check.2)")

        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        #expect(await bridge.waitForLog(containing: #""bridge.scheme":"https""#) != nil)
        let client = CurlClient()
        let body = Array(#"{"value":[{"subscriptionId":"\#(EndToEndTests.subscriptionID)","clientState":"secretClientValue","changeType":"created","resource":"Users/1/Messages/over-tls","resourceData":{"@odata.etag":"1"}}]}"#.utf8)
        let response = try await client.execute(
            HTTPRequest(method: "POST", url: "https://127.0.0.1:\(port)/notifications", headers: [("Content-Type", "application/json")], body: body),
            tls: TLSOptions(caFile: pair.cert))
        #expect(response.status == 202)
        let audit = directory.file("audit.jsonl")
        #expect(try await eventually(timeout: .seconds(10)) { jsonLines(audit).contains { $0.contains("Users/1/Messages/over-tls") } })
        await client.shutdown()
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
    }

    @Test("a key that is not the certificate's: check and run both stop, naming the files")
    func mismatchedKey() async throws {
        let directory = TemporaryDirectory()
        _ = try await makeSelfSignedCertificate(in: directory.path, name: "server")
        _ = try await makeSelfSignedCertificate(in: directory.path, name: "other")
        directory.write("bridge.yaml", Self.config(certificate: "server.pem", key: "other-key.pem"))
        let check = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(check.0 == 1)
        #expect(check.2.contains("server.tls: \(directory.path)/other-key.pem is not the key of the certificate in \(directory.path)/server.pem"), "\(check.2)")
        let run = try await runToCompletion(["run", "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(run.0 == 1)
        #expect(run.2.contains("other-key.pem is not the key of the certificate"), "\(run.2)")
    }
}
