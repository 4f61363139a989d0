import BridgeServer
import BridgeStore
import CurlKit
import Foundation
import Logging
import Testing
import TestSupport

/// `server.tls`: HTTPS with TLS 1.2 or later, certificates renewed without a restart.
/// The certificates are throwaway ones made with the `openssl` command line; the protocol
/// checks use `openssl s_client`, which can offer exactly one protocol version.
@Suite("listener over TLS")
struct TLSListenerTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// `openssl s_client` against the listener; returns what it printed.
    static func handshake(port: Int, _ options: String...) async throws -> String {
        try await commandOutput(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"] + options).output
    }

    @Test("notifications are acknowledged over HTTPS; plain HTTP on the port gets no answer")
    func https() async throws {
        let folder = TemporaryDirectory()
        let pair = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        let tls = try ServerTLS(certificatePath: pair.cert, keyPath: pair.key, logger: Self.logger)
        try await ListenerTests.withListener(tls: tls, caFile: pair.cert) { live in
            #expect(live.baseURL.hasPrefix("https://"))
            let accepted = try await live.post("/notifications", body: ListenerTests.body(ListenerTests.item()))
            #expect(accepted.status == 202)
            #expect(try await live.store.eventCount() == 1)
            let handshake = try await live.post("/notifications?validationToken=abc%20def")
            #expect(handshake.status == 200)
            #expect(String(decoding: handshake.body, as: UTF8.self) == "abc def")

            let plain = try? await live.client.execute(HTTPRequest(url: "http://127.0.0.1:\(live.port)/healthz", timeout: .seconds(2)))
            #expect(plain == nil || plain?.status != 200, "plain HTTP must not be served on the HTTPS port")
        }
    }

    @Test("TLS 1.1 and older are refused with a protocol_version alert; 1.2 and 1.3 are served")
    func versions() async throws {
        let folder = TemporaryDirectory()
        let pair = try await makeSelfSignedCertificate(in: folder.path, name: "server")
        let tls = try ServerTLS(certificatePath: pair.cert, keyPath: pair.key, logger: Self.logger)
        try await ListenerTests.withListener(tls: tls, caFile: pair.cert) { live in
            for old in ["-tls1", "-tls1_1"] {
                // SECLEVEL=0 lets this OpenSSL offer the old version at all, so the refusal is the server's.
                let output = try await Self.handshake(port: live.port, old, "-cipher", "DEFAULT@SECLEVEL=0")
                #expect(output.contains("alert protocol version"), "\(old): \(output)")
                #expect(!output.contains("BEGIN CERTIFICATE"))
            }
            let v12 = try await Self.handshake(port: live.port, "-tls1_2")
            #expect(v12.contains("Protocol  : TLSv1.2") || v12.contains("Protocol: TLSv1.2"), "\(v12)")
            let v13 = try await Self.handshake(port: live.port, "-tls1_3")
            #expect(v13.contains("TLSv1.3"), "\(v13)")
        }
    }

    @Test("a renewed certificate is served from the next connection on; a broken one is not")
    func renewal() async throws {
        let folder = TemporaryDirectory()
        let first = try await makeSelfSignedCertificate(in: folder.path, name: "first")
        let served = (cert: folder.file("served.pem"), key: folder.file("served-key.pem"))
        try FileManager.default.copyItem(atPath: first.cert, toPath: served.cert)
        try FileManager.default.copyItem(atPath: first.key, toPath: served.key)
        let tls = try ServerTLS(certificatePath: served.cert, keyPath: served.key, logger: Self.logger)
        try await ListenerTests.withListener(tls: tls, caFile: served.cert) { live in
            let before = try await Self.handshake(port: live.port)
            #expect(before.contains("CN = 127.0.0.1") || before.contains("CN=127.0.0.1"), "\(before)")

            // Renewal the way ACME clients do it: new files renamed over the old ones.
            let renewedFolder = TemporaryDirectory()
            try await runCommand([
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", renewedFolder.file("key.pem"), "-out", renewedFolder.file("cert.pem"), "-days", "1",
                "-subj", "/CN=renewed", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
            _ = rename(renewedFolder.file("key.pem"), served.key)
            _ = rename(renewedFolder.file("cert.pem"), served.cert)
            let after = try await Self.handshake(port: live.port)
            #expect(after.contains("CN = renewed") || after.contains("CN=renewed"), "\(after)")

            // A half-written file: the renewed pair stays in use and requests keep working.
            try Data("-----BEGIN CERTIFICATE-----\ntruncated".utf8).write(to: URL(fileURLWithPath: served.cert))
            let broken = try await Self.handshake(port: live.port)
            #expect(broken.contains("CN = renewed") || broken.contains("CN=renewed"), "\(broken)")
            let stillServed = try await live.client.execute(
                HTTPRequest(url: "https://127.0.0.1:\(live.port)/healthz"), tls: TLSOptions(insecureSkipVerify: true))
            #expect(stillServed.status == 200)
        }
    }

    @Test("a key that does not belong to the certificate, or a file that is not PEM, stops the start naming the file")
    func badFiles() async throws {
        let folder = TemporaryDirectory()
        let one = try await makeSelfSignedCertificate(in: folder.path, name: "one")
        let other = try await makeSelfSignedCertificate(in: folder.path, name: "other")
        let mismatch = #expect(throws: TLSFileError.self) {
            try ServerTLS(certificatePath: one.cert, keyPath: other.key, logger: Self.logger)
        }
        #expect(mismatch?.description.contains("is not the key of the certificate in \(one.cert)") == true, "\(String(describing: mismatch))")
        let notPEM = folder.file("not.pem")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notPEM))
        let garbage = #expect(throws: TLSFileError.self) {
            try ServerTLS(certificatePath: notPEM, keyPath: one.key, logger: Self.logger)
        }
        #expect(garbage?.description.hasPrefix("\(notPEM): ") == true, "\(String(describing: garbage))")
    }
}
