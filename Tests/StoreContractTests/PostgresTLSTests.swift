import BridgeCore
import BridgeSettings
import Foundation
import Logging
import PostgresStore
import TestSupport
import Testing

/// `state.url` with TLS against a real PostgreSQL started with `ssl=on` and a throwaway
/// certificate: `verify-full` with the right CA connects (and the session is encrypted), with
/// another CA it is refused; `require` connects without a CA.
@Suite("PostgreSQL over TLS", .machine(.processes))
struct PostgresTLSTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("sslmode=verify-full with sslrootcert connects over TLS; another CA is refused; require needs none")
    func verifyFull() async throws {
        guard PostgresServer.binariesPresent else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let folder = TemporaryDirectory(prefix: "pg-tls")
        let server = try #require(
            try await {
                let (certificate, key) = try await makeSelfSignedCertificate(in: folder.path, name: "server")
                return try await PostgresServer.dedicated(certificate: certificate, key: key)
            }())
        defer { server.remove() }
        let database = try await server.createDatabase()
        let ca = folder.file("server.pem")

        let verified = try await PostgresStateStore(
            location: try PostgresLocation.parse(server.tcpURL(database: database, sslmode: "verify-full", rootCertificate: ca)), logger: Self.quiet)
        try await verified.ping()
        // The pool keeps the session open: the server lists it as encrypted.
        #expect(
            try await server.query(
                database: database, "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND datname = current_database()"
            ).first != "0")
        await verified.shutdown()

        let (other, _) = try await makeSelfSignedCertificate(in: folder.path, name: "other")
        await #expect(throws: (any Error).self) {
            let store = try await PostgresStateStore(
                location: try PostgresLocation.parse(server.tcpURL(database: database, sslmode: "verify-full", rootCertificate: other)),
                logger: Self.quiet)
            await store.shutdown()
        }

        let encrypted = try await PostgresStateStore(
            location: try PostgresLocation.parse(server.tcpURL(database: database, sslmode: "require")), logger: Self.quiet)
        try await encrypted.ping()
        await encrypted.shutdown()
    }
}
