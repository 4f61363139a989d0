import CurlKit
import Foundation
import TestSupport
import Testing

/// The real binary on the PostgreSQL store (`state.url`), against the test process's PostgreSQL
/// server (`PostgresServer`, a fresh database). Skipped, with a message, without the binaries.
@Suite("end to end on PostgreSQL", .machine(.processes))
struct PostgresEndToEndTests {
    static func config(url: String) -> String {
        EndToEndTests.config().replacingOccurrences(of: "path: state.sqlite", with: "url: \"\(url)\"")
    }

    @Test("notifications are journaled in PostgreSQL and reach the file sink; after a restart Graph's retry is still a duplicate; subscriptions lists the database's records")
    func runOnPostgres() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.config(url: server.url(database: database)))
        let client = CurlClient()
        let audit = directory.file("audit.jsonl")

        let first = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await first.port()
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("pg", 1)) == 202)
        #expect(try await eventually { jsonLines(audit).count == 1 }, "\(first.log)")
        first.signal(SIGTERM)
        #expect(await first.waitForExit() == 0, "\(first.log)")

        // The deduplication keys and the journal live in the database, not in the process.
        let second = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let again = try await second.port()
        #expect(try await EndToEndTests.post(client, port: again, body: EndToEndTests.notification("pg", 1)) == 202)
        #expect(try await EndToEndTests.post(client, port: again, body: EndToEndTests.notification("pg", 2)) == 202)
        #expect(try await eventually { jsonLines(audit).count >= 2 }, "\(second.log)")
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0, "\(second.log)")
        #expect(EndToEndTests.numbers("pg", in: jsonLines(audit)) == [1, 2], "Graph's retry of pg-1 must be delivered once")
        #expect(!FileManager.default.fileExists(atPath: directory.file("state.sqlite")), "with state.url no SQLite file is made")

        let (status, out, err) = try await runToCompletion(["subscriptions", "--config", "bridge.yaml"], directory: directory.path, environment: EndToEndTests.environment)
        #expect(status == 0, "\(err)")
        #expect(out.contains("audit-feed") && out.contains(EndToEndTests.subscriptionID), "\(out)")
        #expect(!out.contains("secretClientValue"))
        let (deadStatus, deadOut, deadErr) = try await runToCompletion(["dead-letters", "list", "--config", "bridge.yaml"], directory: directory.path)
        #expect(deadStatus == 0, "\(deadErr)")
        #expect(deadOut == "no dead letters\n")
        await client.shutdown()
    }
}
