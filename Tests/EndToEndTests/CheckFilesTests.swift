import Foundation
import Testing
import TestSupport

/// `check` reads the key and certificate files `run` would load, not only the YAML.
@Suite("check reads the files the configuration names")
struct CheckFilesTests {
    @Test("an encryption key that is not a PEM private key fails check, naming the subscription")
    func encryptionKey() async throws {
        let directory = TemporaryDirectory()
        try await runCommand([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.file("enc.key"),
            "-out", directory.file("enc.pem"), "-days", "1", "-subj", "/CN=graph-bridge-encryption",
        ])
        directory.write("not-a-key.pem", "hello\n")
        func config(key: String) -> String {
            """
            graph:
              tenant: contoso.onmicrosoft.com
              clientId: 11111111-2222-3333-4444-555555555555
              clientSecret: not-used-by-check
            server:
              listen: 127.0.0.1:0
              publicUrl: https://bridge.example.com
            subscriptions:
              - name: rich-inbox
                resource: users/alice@contoso.com/messages
                changeTypes: [created]
                includeResourceData: true
                encryption: { certificate: enc.pem, key: \(key), id: enc-1 }
            sinks:
              out: { type: stdout }
            routes:
              - to: [out]

            """
        }
        directory.write("good.yaml", config(key: "enc.key"))
        let good = try await runToCompletion(["check", "--config", "good.yaml"], directory: directory.path)
        #expect(good.0 == 0, "\(good.2)")

        directory.write("bad.yaml", config(key: "not-a-key.pem"))
        let bad = try await runToCompletion(["check", "--config", "bad.yaml"], directory: directory.path)
        #expect(bad.0 == 1)
        #expect(bad.2.contains("bad.yaml: subscription 'rich-inbox': encryption:"), "\(bad.2)")
    }
}
