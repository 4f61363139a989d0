import Foundation
import TestSupport
import Testing

/// Delegated mode end to end, against `graph-bridge simulator` in its own process: `login` runs
/// the device-code flow and stores the refresh token; `run` signs in with it, creates the
/// subscription on the signed-in user's mailbox, and a simulated mail reaches the file sink.
@Suite("delegated login", .machine(.processes))
struct DelegatedLoginTests {
    @Test("login stores a refresh token; run uses it to subscribe to me/ and delivers a mail")
    func loginThenRun() async throws {
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--approve-device-codes", "--mail-every", "0.3", "--log-format", "json"], directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let (authority, tenant, clientId) = (banner.authorityURL, banner.tenant, banner.clientID)
        let port = try reservedLoopbackPort()
        directory.write("bridge.yaml", """
            graph:
              tenant: \(tenant)
              clientId: \(clientId)
              delegated: true
              authorityUrl: \(authority)
              baseUrl: \(authority)/v1.0

            """ + serverConfigSection(publicPort: port) + """
            state:
              path: state.sqlite
            subscriptions:
              - name: my-inbox
                resource: me/mailFolders('Inbox')/messages
                changeTypes: [created]
                fetch: [subject]
            sinks:
              audit: { type: file, path: audit.jsonl }
            routes:
              - to: [audit]

            """)

        let login = try await runToCompletion(["login", "--config", "bridge.yaml"], directory: directory.path)
        #expect(login.0 == 0, "\(login.1)\(login.2)")
        #expect(login.1.contains("devicelogin") || login.1.contains("enter the code"), "the prompt is shown: \(login.1)")
        #expect(login.1.contains("Signed in."))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.file("state.sqlite"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600, "the file holding the refresh token is private")

        let bridge = try BridgeProcess(["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path)
        #expect(try await bridge.waitUntilReady(), "\(bridge.log)")
        let audit = directory.file("audit.jsonl")
        #expect(try await eventually(timeout: .seconds(30)) { !jsonLines(audit).isEmpty })
        let line = try #require(jsonLines(audit).first)
        #expect(line.contains(#""name":"my-inbox""#) && line.contains(#""subject":"Quarterly numbers are in""#), "the first of the sample mails: \(line)")

        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        simulator.signal(SIGTERM)
        #expect(await simulator.waitForExit() == 0)
    }
}
