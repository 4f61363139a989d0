import CurlKit
import TestSupport
import Foundation
import Testing

/// HTTPS against the receiver with a throwaway self-signed certificate for 127.0.0.1.
@Suite(.machine(.processes)) struct CurlClientTLSTests {
    @Test func verificationFollowsTLSOptions() async throws {
        let folder = TemporaryDirectory(prefix: "curlkit-tls")
        let server = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        let other = try await makeSelfSignedCertificate(in: folder.path, name: "other")

        try await withHTTPReceiver(["--tls-cert", server.cert, "--tls-key", server.key]) { receiver in
            let url = "https://127.0.0.1:\(receiver.port)/echo"
            let client = CurlClient()

            let trusted = try await client.execute(HTTPRequest(url: url), tls: TLSOptions(caFile: server.cert))
            #expect(trusted.status == 200)

            // The system store doesn't know the certificate; nor does a bundle with another one.
            for tls in [TLSOptions(), TLSOptions(caFile: other.cert)] {
                let error = await #expect(throws: TransportError.self) { try await client.execute(HTTPRequest(url: url), tls: tls) }
                #expect(error?.kind == .tls, "\(tls)")
                #expect(error?.isTransient == false)
            }
            let missing = await #expect(throws: TransportError.self) {
                try await client.execute(HTTPRequest(url: url), tls: TLSOptions(caFile: folder.file("none.pem")))
            }
            #expect(missing?.kind == .tls)

            // An unverified connection is never reused for a request that verifies.
            let insecure = CurlClient(configuration: .init(tls: TLSOptions(insecureSkipVerify: true)))
            #expect(try await insecure.execute(HTTPRequest(url: url)).status == 200)
            let strict = await #expect(throws: TransportError.self) {
                try await insecure.execute(HTTPRequest(url: url), tls: TLSOptions())
            }
            #expect(strict?.kind == .tls)
            await insecure.shutdown()
            await client.shutdown()
        }
    }
}
