import CurlKit
import Foundation
import TestSupport
import Testing

/// Secrets never leave through the logs, the status page or the metrics: a full run at trace
/// level with every kind of secret configured and every sink failing, then a grep for each.
@Suite("secrets", .machine(.processes))
struct SecretsTests {
    static let secrets = [
        "clientState": "cs-7e1d55a0b8f64c0f9c1a",
        "graphSecret": "gs-2b9e41c7d03a4f56a8e1",
        "webhookSecret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4",
        "bearer": "bt-91f0c3e2aa7b4d1e8c55",
        "smtpPassword": "pw-5c6d7e8f9a0b1c2d3e4f",
        "hookPath": "hp-0a1b2c3d4e5f60718293",
        "adminToken": "at-4d3c2b1a0f9e8d7c6b5a",
    ]

    @Test("a trace-level run with failing sinks logs none of the configured secrets")
    func noSecretsLogged() async throws {
        try await withHTTPReceiver { receiver in
            // Graph and the SMTP server: refused.
            let refusing = try RefusingPort()
            defer { refusing.close() }
            let refusedPort = refusing.port
            let directory = TemporaryDirectory()
            directory.write("bridge.yaml", """
                graph:
                  tenant: contoso.onmicrosoft.com
                  clientId: 11111111-2222-3333-4444-555555555555
                  clientSecret: ${GRAPH_SECRET}
                  authorityUrl: http://127.0.0.1:\(refusedPort)
                  baseUrl: http://127.0.0.1:\(refusedPort)/v1.0

                """ + serverConfigSection(publicUrl: "https://bridge.example.com", admin: #"{ listen: 127.0.0.1:0, token: "${ADMIN_TOKEN}" }"#) + """
                state:
                  path: state.sqlite
                subscriptions:
                  - name: inbox
                    resource: users/alice@contoso.com/messages
                    changeTypes: [created]
                  - name: feed
                    manage: false
                    id: \(EndToEndTests.subscriptionID)
                    clientState: ${FEED_STATE}
                sinks:
                  hook:
                    type: webhook
                    url: \(receiver.url("/status/503"))?key=${HOOK_PATH}
                    secret: ${WEBHOOK_SECRET}
                    headers: { Authorization: "Bearer ${BEARER}" }
                    format: json
                  mail:
                    type: smtp
                    url: smtp://127.0.0.1:\(refusedPort)
                    tls: none
                    username: bridge
                    password: ${SMTP_PASSWORD}
                    from: bridge@example.com
                    to: [ops@example.com]
                retry: { initialBackoff: 100ms, maxBackoff: 200ms }
                routes:
                  - to: [hook, mail]

                """)
            let environment = [
                "GRAPH_SECRET": Self.secrets["graphSecret"]!, "FEED_STATE": Self.secrets["clientState"]!,
                "WEBHOOK_SECRET": Self.secrets["webhookSecret"]!, "BEARER": Self.secrets["bearer"]!,
                "SMTP_PASSWORD": Self.secrets["smtpPassword"]!, "HOOK_PATH": Self.secrets["hookPath"]!,
                "ADMIN_TOKEN": Self.secrets["adminToken"]!,
            ]
            let check = try await runToCompletion(["check", "--config", "bridge.yaml"], directory: directory.path, environment: environment)
            #expect(check.0 == 0, "\(check.2)")

            let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json", "--log-level", "trace"], directory: directory.path, environment: environment)
            let port = try await bridge.port()
            let client = CurlClient()
            let good = Array(#"{"value":[{"subscriptionId":"\#(EndToEndTests.subscriptionID)","clientState":"\#(Self.secrets["clientState"]!)","changeType":"created","resource":"Users/1/Messages/s"}]}"#.utf8)
            let forged = Array(#"{"value":[{"subscriptionId":"\#(EndToEndTests.subscriptionID)","clientState":"\#(Self.secrets["clientState"]!)x","changeType":"created","resource":"Users/1/Messages/f"}]}"#.utf8)
            #expect(try await EndToEndTests.post(client, port: port, body: good) == 202)
            #expect(try await EndToEndTests.post(client, port: port, body: forged) == 202)
            // Both sinks fail and retry; the subscription manager fails to sign in and retries.
            #expect(await bridge.waitForLog(containing: "\"bridge.sink\":\"hook\"") != nil)
            #expect(await bridge.waitForLog(containing: "\"bridge.sink\":\"mail\"") != nil)
            #expect(await bridge.waitForLog(containing: "subscription upkeep failed") != nil)
            let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
            let authorized = [("Authorization", "Bearer \(Self.secrets["adminToken"]!)")]
            let status = try await client.execute(HTTPRequest(url: admin + "/status.json", headers: authorized)).bodyText
            let metrics = try await client.execute(HTTPRequest(url: admin + "/metrics", headers: authorized)).bodyText
            // The failing parts are named in these bodies, with their errors: still no secret.
            let health = try await client.execute(HTTPRequest(url: admin + "/healthz", headers: authorized)).bodyText
            let readiness = try await client.execute(HTTPRequest(url: admin + "/readyz", headers: authorized)).bodyText
            #expect(readiness.contains("inbox"), "the subscription Graph never created is named: \(readiness)")
            await client.shutdown()
            bridge.signal(SIGTERM)
            #expect(await bridge.waitForExit() == 0)
            let deadLetters = try await runToCompletion(["dead-letters", "list", "--config", "bridge.yaml"], directory: directory.path, environment: environment)

            let everything = [bridge.log, bridge.output, check.1, check.2, status, metrics, health, readiness, deadLetters.1, deadLetters.2].joined(separator: "\n")
            #expect(everything.contains("\"bridge.sink\":\"hook\""), "the run produced the logs this test is about")
            for (name, secret) in Self.secrets {
                #expect(!everything.contains(secret), "\(name) leaked")
            }
            // Requests did carry them where they belong: the signature and the bearer reached the receiver.
            let request = try #require(try receiver.recordedRequests().first)
            #expect(request.header("Authorization") == "Bearer \(Self.secrets["bearer"]!)")
            #expect(request.header("webhook-signature")?.hasPrefix("v1,") == true)
        }
    }
}
