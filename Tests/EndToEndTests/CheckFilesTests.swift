import Foundation
import Testing
import TestSupport

/// `check` reads the key and certificate files `run` would load, not only the YAML.
@Suite("check reads the files the configuration names", .machine(.processes))
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
        #expect(bad.2.range(of: #"bad.yaml:13:\d+: subscription 'rich-inbox': encryption:"#, options: .regularExpression) != nil, "positioned at the key pair: \(bad.2)")

        // A private key others can read works, but check warns (and still passes).
        #expect(chmod(directory.file("enc.key"), 0o644) == 0)
        let readable = try await runToCompletion(["check", "--config", "good.yaml"], directory: directory.path)
        #expect(readable.0 == 0, "\(readable.2)")
        #expect(readable.2.range(of: #"good.yaml:13:\d+: warning: subscription 'rich-inbox': encryption.key .*enc.key is readable by others \(mode 644\): chmod 600 it"#, options: .regularExpression) != nil, "\(readable.2)")
        #expect(good.2.isEmpty, "no warning for a private key: \(good.2)")

        // Mounted secrets are symbolic links: the key's own mode counts, not the link's (0777).
        #expect(chmod(directory.file("enc.key"), 0o600) == 0)
        #expect(symlink(directory.file("enc.key"), directory.file("linked.key")) == 0)
        directory.write("linked.yaml", config(key: "linked.key"))
        let linked = try await runToCompletion(["check", "--config", "linked.yaml"], directory: directory.path)
        #expect(linked.0 == 0, "\(linked.2)")
        #expect(linked.2.isEmpty, "no warning for a link to a private key: \(linked.2)")
    }

    @Test("graph.certificate is loaded by check, as run loads it")
    func graphCertificate() async throws {
        let directory = TemporaryDirectory()
        directory.write("app.pem", "not a certificate\n")
        directory.write("app.key", "not a key\n")
        #expect(chmod(directory.file("app.key"), 0o600) == 0)
        directory.write("bridge.yaml", """
            graph:
              tenant: contoso.onmicrosoft.com
              clientId: 11111111-2222-3333-4444-555555555555
              certificate: { certificate: app.pem, key: app.key }
            server:
              listen: 127.0.0.1:0
              publicUrl: https://bridge.example.com
            subscriptions:
              - name: inbox
                resource: users/alice@contoso.com/messages
                changeTypes: [created]
            sinks:
              out: { type: stdout }
            routes:
              - to: [out]

            """)
        let result = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path)
        #expect(result.0 == 1)
        #expect(result.2.range(of: #"bridge.yaml:4:\d+: graph.certificate: "#, options: .regularExpression) != nil, "\(result.2)")
    }

    @Test("http:// to a host other than this machine is refused for Graph's URLs and publicUrl", arguments: [
        ("authorityUrl", "http://login.example.com"), ("baseUrl", "http://10.1.2.3/v1.0"), ("publicUrl", "http://bridge.example.com"),
    ])
    func plainHTTPOutsideLoopback(_ key: String, _ url: String) async throws {
        let directory = TemporaryDirectory()
        func value(_ name: String, _ fallback: String) -> String { key == name ? url : fallback }
        directory.write("bridge.yaml", """
            graph:
              tenant: contoso.onmicrosoft.com
              clientId: 11111111-2222-3333-4444-555555555555
              clientSecret: not-used-by-check
              authorityUrl: \(value("authorityUrl", "http://127.0.0.1:9999"))
              baseUrl: \(value("baseUrl", "http://localhost:9999/v1.0"))
            server:
              listen: 127.0.0.1:0
              publicUrl: \(value("publicUrl", "http://[::1]:8080"))
            subscriptions:
              - name: inbox
                resource: users/alice@contoso.com/messages
                changeTypes: [created]
            sinks:
              out: { type: stdout }
            routes:
              - to: [out]

            """)
        let line = ["authorityUrl": 5, "baseUrl": 6, "publicUrl": 9][key]!
        for command in ["check", "run"] {
            let result = try await runToCompletion([command, "--config", "bridge.yaml"], directory: directory.path)
            #expect(result.0 == 1, "\(command): \(result.2)")
            #expect(result.2.contains("bridge.yaml:\(line):"), "\(command) names the line: \(result.2)")
            #expect(result.2.contains("uses http:// outside this machine"), "\(result.2)")
        }
    }
}
