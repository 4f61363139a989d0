import CurlKit
import TestSupport
import Foundation
import Testing

/// HTTPS against the receiver with a throwaway self-signed certificate for 127.0.0.1.
@Suite struct CurlClientTLSTests {
    /// Makes a self-signed certificate and key in a fresh folder; returns their paths.
    private static func makeCertificate(in folder: URL, name: String) async throws -> (cert: String, key: String) {
        let cert = folder.appendingPathComponent("\(name).pem").path
        let key = folder.appendingPathComponent("\(name)-key.pem").path
        try await runCommand([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ])
        return (cert, key)
    }

    @Test func verificationFollowsTLSOptions() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("curlkit-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let server = try await Self.makeCertificate(in: folder, name: "server")
        let other = try await Self.makeCertificate(in: folder, name: "other")

        try await withHTTPReceiver(["--tls-cert", server.cert, "--tls-key", server.key]) { receiver in
            let url = "https://127.0.0.1:\(receiver.port)/echo"
            let client = CurlClient()

            let trusted = try await client.execute(HTTPRequest(url: url), tls: TLSOptions(caFile: server.cert))
            #expect(trusted.status == 200)

            // The system store doesn't know the certificate; nor does a bundle with another one.
            for tls in [TLSOptions(), TLSOptions(caFile: other.cert)] {
                let error = await #expect(throws: CurlError.self) { try await client.execute(HTTPRequest(url: url), tls: tls) }
                #expect(error?.kind == .tls, "\(tls)")
                #expect(error?.isTransient == false)
            }
            let missing = await #expect(throws: CurlError.self) {
                try await client.execute(HTTPRequest(url: url), tls: TLSOptions(caFile: folder.appendingPathComponent("none.pem").path))
            }
            #expect(missing?.kind == .tls)

            // An unverified connection is never reused for a request that verifies.
            let insecure = CurlClient(configuration: .init(tls: TLSOptions(insecureSkipVerify: true)))
            #expect(try await insecure.execute(HTTPRequest(url: url)).status == 200)
            let strict = await #expect(throws: CurlError.self) {
                try await insecure.execute(HTTPRequest(url: url), tls: TLSOptions())
            }
            #expect(strict?.kind == .tls)
            await insecure.shutdown()
            await client.shutdown()
        }
    }
}
