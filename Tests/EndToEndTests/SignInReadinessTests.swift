import CurlKit
import Foundation
import GraphSimulator
import TestSupport
import Testing

/// `/readyz` says when signing in to Graph fails (renewals would fail next), and recovers with it.
@Suite("readiness: sign-in", .machine(.processes))
struct SignInReadinessTests {
    @Test("/readyz is 503 naming signin while Graph's token endpoint refuses the bridge, and 200 again once it signs in")
    func signInFailing() async throws {
        // Tokens shorter-lived than the bridge's 60 s renewal margin: every Graph call signs in again.
        try await withInProcessSimulator({ $0.accessTokenLifetime = .seconds(30) }) { simulator in
            let directory = TemporaryDirectory()
            let port = try reservedLoopbackPort()
            directory.write(
                "bridge.yaml",
                simulator.graphSection + serverConfigSection(publicPort: port) + """
                state: { path: state.sqlite }
                subscriptions:
                  - name: inbox
                    resource: users/alice@contoso.com/mailFolders('Inbox')/messages
                    changeTypes: [created]
                    fetch: [subject]
                sinks:
                  audit: { type: file, path: audit.jsonl }
                routes:
                  - to: [audit]

                """)
            let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
            let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
            let client = CurlClient()
            func readiness() async throws -> (Int, String) {
                let response = try await client.execute(HTTPRequest(url: admin + "/readyz"))
                return (response.status, response.bodyText)
            }
            #expect(try await eventually { try await readiness().0 == 200 }, "\(bridge.log)")

            // The identity platform refuses the app (a revoked secret): the next read signs in and fails.
            simulator.injectFault(.error(status: 401, code: "invalid_client", message: "AADSTS7000222: the client secret has expired"), on: .token, count: 1000)
            try simulator.createMessage(MessageContent(subject: "while sign-in fails"), in: "alice@contoso.com")
            #expect(try await eventually { try await readiness().0 == 503 }, "\(bridge.log)")
            let (_, body) = try await readiness()
            #expect(body.contains(#""signin""#) && body.contains("invalid_client"), "\(body)")

            // Signing in works again: the next read's sign-in clears it.
            simulator.clearFaults()
            try simulator.createMessage(MessageContent(subject: "after"), in: "alice@contoso.com")
            let recovered = try await eventually { try await readiness().0 == 200 }
            #expect(recovered, "\(bridge.log.suffix(2000))")

            await client.shutdown()
            bridge.signal(SIGTERM)
            #expect(await bridge.waitForExit() == 0)
        }
    }
}
