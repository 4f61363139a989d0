import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Testing

/// `encryption:` with `previous:` key pairs (key rotation, SPEC section 9): decoded beside the
/// current pair, and refused, positioned, where an id would be ambiguous.
@Suite("encryption: previous key pairs")
struct EncryptionRotationConfigTests {
    static func config(_ encryption: String) -> String {
        """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: s3cret
        server:
          listen: 127.0.0.1:0
          publicUrl: https://bridge.example.com
        subscriptions:
          - name: rich
            resource: users/alice@contoso.com/messages?$select=subject
            changeTypes: [created]
            includeResourceData: true
            encryption:
        \(encryption)
        sinks:
          rec: { type: recording }
        routes:
          - to: [rec]

        """
    }

    @Test("previous: key pairs load after the current one, with paths relative to the file")
    func decodes() throws {
        let yaml = Self.config(
            """
                  certificate: enc-2027.pem
                  key: enc-2027.key
                  id: enc-2027
                  previous:
                    - { certificate: enc-2026.pem, key: enc-2026.key, id: enc-2026 }
                    - certificate: old/enc-2025.pem
                      key: old/enc-2025.key
                      id: enc-2025
            """)
        let configuration = try ConfigurationTests.load(yaml).get()
        let encryption = try #require(configuration.subscriptions.first?.encryption)
        #expect(encryption.id == "enc-2027")
        #expect(encryption.previous.map(\.id) == ["enc-2026", "enc-2025"])
        #expect(encryption.keyPairs.map(\.id) == ["enc-2027", "enc-2026", "enc-2025"])
        #expect(encryption.previous[1].certificate.path.hasSuffix("/old/enc-2025.pem"))
        #expect(encryption.previous[1].key.path.hasSuffix("/old/enc-2025.key"))
        #expect(encryption.previous[0].certificate.mark?.line == 18, "the mark is kept for check's file errors")
    }

    @Test("without previous: the list is empty")
    func noPrevious() throws {
        let configuration = ConfigurationTests.load(
            Self.config("      { certificate: enc.pem, key: enc.key, id: enc-1 }")
                .replacingOccurrences(of: "encryption:\n", with: "encryption: "))
        let encryption = try #require(try configuration.get().subscriptions.first?.encryption)
        #expect(encryption.previous.isEmpty)
        #expect(encryption.keyPairs.map(\.id) == ["enc-1"])
    }

    @Test("a previous id equal to the current one, or listed twice, is refused at its entry")
    func ambiguousIDs() {
        let sameAsCurrent = ConfigurationTests.errors(
            Self.config(
                """
                      certificate: new.pem
                      key: new.key
                      id: enc-1
                      previous:
                        - { certificate: old.pem, key: old.key, id: enc-1 }
                """))
        #expect(
            sameAsCurrent == [
                "bridge.yaml:18:11: encryption: previous key id 'enc-1' is the current id; give the new key pair its own id"
            ])
        let twice = ConfigurationTests.errors(
            Self.config(
                """
                      certificate: new.pem
                      key: new.key
                      id: enc-3
                      previous:
                        - { certificate: a.pem, key: a.key, id: enc-2 }
                        - { certificate: b.pem, key: b.key, id: enc-2 }
                """))
        #expect(twice == ["bridge.yaml:19:11: encryption: previous key id 'enc-2' is listed twice"])
    }

    @Test("a previous entry is checked like the current pair: every key required, unknown keys refused, ids of at most 128 characters")
    func entriesChecked() {
        let missingKey = ConfigurationTests.errors(
            Self.config(
                """
                      certificate: new.pem
                      key: new.key
                      id: enc-2
                      previous:
                        - { certificate: old.pem, id: enc-1 }
                """))
        #expect(missingKey.count == 1 && missingKey[0].hasPrefix("bridge.yaml:18:"), "\(missingKey)")
        #expect(missingKey.first?.contains("key") == true)
        let unknown = ConfigurationTests.errors(
            Self.config(
                """
                      certificate: new.pem
                      key: new.key
                      id: enc-2
                      previous:
                        - { certificate: old.pem, key: old.key, id: enc-1, thumbprint: AB }
                """))
        #expect(unknown.count == 1 && unknown[0].hasPrefix("bridge.yaml:18:") && unknown[0].contains("thumbprint"), "\(unknown)")
        let long = String(repeating: "k", count: 129)
        let tooLong = ConfigurationTests.errors(
            Self.config(
                """
                      certificate: new.pem
                      key: new.key
                      id: enc-2
                      previous:
                        - { certificate: old.pem, key: old.key, id: \(long) }
                """))
        #expect(tooLong.count == 1 && tooLong[0].hasPrefix("bridge.yaml:18:") && tooLong[0].contains("1 to 128 characters"), "\(tooLong)")
    }
}
