import BridgeCore
import BridgeStore
import CurlKit
import Foundation
import Logging
import Testing
import TestSupport

/// The commands an operator runs beside the bridge, through the real binary: `routes test` against
/// the running intake, `--expect`, `check`'s output, the read-only commands without secrets, and
/// dead letters at scale.
@Suite("operator commands", .serialized, .machine(.processes))
struct OperatorCommandsTests {
    static let feedID = EndToEndTests.subscriptionID
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs the binary with `environment` added and `removing` taken out of this process's environment.
    static func run(_ arguments: [String], in directory: TemporaryDirectory, environment: [String: String] = [:], removing: [String] = [])
        async throws
        -> (status: Int32, out: String, err: String)
    {
        try await runToCompletion(arguments, directory: directory.path, environment: environment, removing: removing)
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    // MARK: routes test and the intake

    static let receiveOnlyConfig = serverConfigSection() + """
        state:
          path: state.sqlite
        subscriptions:
          - name: audit-feed
            manage: false
            id: \(feedID)
            clientState: ${FEED_STATE}
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - match: { changeType: created }
            to: [audit]
          - to: [audit]

        """

    /// One notification item; `clientState` nil leaves it out.
    static func item(_ n: Int, id: String = feedID, clientState: String? = "secretClientValue", changeType: String = "created") -> String {
        let state = clientState.map { #""clientState":"\#($0)","# } ?? ""
        return
            #"{"subscriptionId":"\#(id)",\#(state)"changeType":"\#(changeType)","resource":"Users/1/Messages/RT-\#(n)","resourceData":{"@odata.etag":"\#(n)"}}"#
    }

    static func body(_ items: [String]) -> String { #"{"value":["# + items.joined(separator: ",") + "]}" }

    @Test("routes test drops what the running intake drops and routes what it routes, item by item")
    func routesTestMatchesTheIntake() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.receiveOnlyConfig)
        let items = [
            Self.item(0),
            Self.item(1, clientState: "forged"),
            Self.item(2, id: "00000000-0000-0000-0000-000000000000"),
            Self.item(3, changeType: "updated"),
            Self.item(4, clientState: nil),
            Self.item(5, id: Self.feedID.uppercased()),
        ]
        directory.write("items.json", Self.body(items))

        let dryRun = try await Self.run(
            ["routes", "test", "--config", "bridge.yaml", "items.json"], in: directory, environment: EndToEndTests.environment)
        #expect(dryRun.status == 0, "\(dryRun.err)")
        #expect(
            Self.lines(dryRun.out) == [
                "item 0: subscription=audit-feed created -> audit [routes #1]",
                "item 1: dropped: wrong clientState (subscription=audit-feed)",
                "item 2: dropped: unknown subscription (no subscription has id 00000000-0000-0000-0000-000000000000)",
                "item 3: subscription=audit-feed updated -> audit [routes #2]",
                "item 4: dropped: wrong clientState (subscription=audit-feed)",
                "item 5: subscription=audit-feed created -> audit [routes #1]",
            ])
        let routedByDryRun = Self.lines(dryRun.out).enumerated().filter { $0.element.contains("-> audit") }.map(\.offset)

        // The same body through the real listener; a later sentinel shows everything before it was routed.
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        #expect(try await EndToEndTests.post(client, port: port, body: Array(Self.body(items).utf8)) == 202)
        #expect(try await EndToEndTests.post(client, port: port, body: Array(Self.body([Self.item(99)]).utf8)) == 202)
        let audit = directory.file("audit.jsonl")
        #expect(
            try await eventually {
                let seen = EndToEndTests.numbers("RT", in: jsonLines(audit))
                return seen.contains(99) && seen.count >= routedByDryRun.count + 1
            })
        let routedByBridge = EndToEndTests.numbers("RT", in: jsonLines(audit)).filter { $0 != 99 }.sorted()
        #expect(routedByBridge == routedByDryRun)
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0)
        await client.shutdown()
    }

    @Test("--expect exits 0 when every item reaches exactly those sinks, 1 naming each item that does not")
    func expectExitCodes() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.receiveOnlyConfig)
        directory.write("good.json", Self.body([Self.item(0), Self.item(1, changeType: "deleted")]))
        directory.write("mixed.json", Self.body([Self.item(0), Self.item(1, clientState: "forged"), Self.item(2, id: "unknown-id")]))
        directory.write("bad.json", Self.body([Self.item(1, clientState: "forged"), Self.item(2, id: "unknown-id")]))
        let env = EndToEndTests.environment

        let good = try await Self.run(
            ["routes", "test", "--config", "bridge.yaml", "--expect", "audit", "good.json"], in: directory, environment: env)
        #expect(good.status == 0, "\(good.err)")
        #expect(good.err.isEmpty)

        let mixed = try await Self.run(
            ["routes", "test", "--config", "bridge.yaml", "--expect", "audit", "mixed.json"], in: directory, environment: env)
        #expect(mixed.status == 1)
        #expect(
            Self.lines(mixed.err) == [
                "item 1: expected audit, got dropped: wrong clientState",
                "item 2: expected audit, got dropped: unknown subscription",
            ])

        let dropped = try await Self.run(["routes", "test", "--config", "bridge.yaml", "--expect", "", "bad.json"], in: directory, environment: env)
        #expect(dropped.status == 0, "\(dropped.err)")
        let notDropped = try await Self.run(
            ["routes", "test", "--config", "bridge.yaml", "--expect", "", "good.json"], in: directory, environment: env)
        #expect(notDropped.status == 1)
        #expect(Self.lines(notDropped.err).first == "item 0: expected dropped or no sink, got audit")
        #expect(!FileManager.default.fileExists(atPath: directory.file("state.sqlite")), "routes test must not create the state file")
    }

    static let managedConfig = """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: ${GRAPH_CLIENT_SECRET}

        """ + serverConfigSection(publicUrl: "https://bridge.example.com") + """
        state:
          path: state.sqlite
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/messages
            changeTypes: [created]
          - name: everything
            resource: users/bob@contoso.com
            changeTypes: [created]
          - name: bobs-mail
            resource: users/bob@contoso.com/messages
            changeTypes: [created]
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - match: { subscription: inbox }
            to: [audit]

        """

    static func managedItem(id: String, clientState: String = "x", resource: String) -> String {
        #"{"subscriptionId":"\#(id)","clientState":"\#(clientState)","changeType":"created","resource":"\#(resource)"}"#
    }

    @Test("managed subscriptions: by the id in the state file, else by resource when only one fits; never a guess")
    func managedResolution() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.managedConfig)
        directory.write(
            "items.json",
            Self.body([
                Self.managedItem(id: "new-1", resource: "Users/Alice@Contoso.com/Messages/AAA"),
                Self.managedItem(id: "new-2", resource: "Users/bob@contoso.com/messages/BBB"),
                Self.managedItem(id: "new-3", resource: "Users/carol@contoso.com/messages/CCC"),
            ]))
        let env = ["GRAPH_CLIENT_SECRET": "not-used"]
        let before = try await Self.run(["routes", "test", "--config", "bridge.yaml", "items.json"], in: directory, environment: env)
        #expect(before.status == 0, "\(before.err)")
        #expect(
            Self.lines(before.out) == [
                "item 0: subscription=inbox (by resource: not created yet, clientState not checked) created -> audit [routes #1]",
                "item 1: dropped: unknown subscription (no subscription has id new-2; its resource fits everything, bobs-mail, which have no id yet)",
                "item 2: dropped: unknown subscription (no subscription has id new-3)",
            ])
        #expect(!FileManager.default.fileExists(atPath: directory.file("state.sqlite")), "routes test must not create the state file")

        // Once the bridge has created inbox, only its Graph id and clientState count.
        do {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: Self.logger)
            try await store.saveSubscription(
                SubscriptionRecord(
                    name: "inbox", graphID: "graph-inbox", resource: "users/alice@contoso.com/messages", changeTypes: "created",
                    clientState: "inbox-secret", notificationURL: "https://bridge.example.com/notifications",
                    expiration: Date().addingTimeInterval(3600),
                    renewedAt: Date(), managed: true))
        }
        directory.write(
            "after.json",
            Self.body([
                Self.managedItem(id: "GRAPH-INBOX", clientState: "inbox-secret", resource: "Users/x/Messages/1"),
                Self.managedItem(id: "graph-inbox", clientState: "stale", resource: "Users/x/Messages/2"),
                Self.managedItem(id: "new-1", resource: "Users/Alice@Contoso.com/Messages/AAA"),
            ]))
        let after = try await Self.run(["routes", "test", "--config", "bridge.yaml", "after.json"], in: directory, environment: env)
        #expect(after.status == 0, "\(after.err)")
        #expect(
            Self.lines(after.out) == [
                "item 0: subscription=inbox created -> audit [routes #1]",
                "item 1: dropped: wrong clientState (subscription=inbox)",
                "item 2: dropped: unknown subscription (no subscription has id new-1)",
            ])
    }

    // MARK: check

    @Test("check: a wrong sink type is the one error of its sink; OK counts in the singular for one")
    func checkOutput() async throws {
        let directory = TemporaryDirectory()
        directory.write(
            "bridge.yaml",
            """
            subscriptions:
              - name: feed
                manage: false
                id: \(Self.feedID)
                clientState: s3cret
            sinks:
              console: { type: stdot, format: text }
            routes:
              - to: [console]

            """)
        let bad = try await Self.run(["check", "--config", "bridge.yaml"], in: directory)
        #expect(bad.status == 1)
        #expect(bad.err == "bridge.yaml:7:20: unknown sink type 'stdot' for sink 'console' (known types: exec, file, smtp, stdout, webhook)\n")
        #expect(bad.out.isEmpty)

        directory.write(
            "bridge.yaml",
            try String(contentsOfFile: directory.file("bridge.yaml"), encoding: .utf8).replacingOccurrences(of: "stdot", with: "stdout"))
        let good = try await Self.run(["check", "--config", "bridge.yaml"], in: directory)
        #expect(good.status == 0, "\(good.err)")
        #expect(good.out == "bridge.yaml: OK (1 subscription, 1 sink, 1 route)\n")
    }

    // MARK: read-only commands

    static let secretsConfig = """
        graph:
          tenant: contoso.onmicrosoft.com
          clientId: 11111111-2222-3333-4444-555555555555
          clientSecret: ${GRAPH_CLIENT_SECRET}

        """ + serverConfigSection(publicUrl: "https://bridge.example.com") + """
        state:
          path: state.sqlite
        subscriptions:
          - name: inbox
            resource: me/messages
            changeTypes: [created]
        sinks:
          mail:
            type: smtp
            url: smtp://127.0.0.1:2525
            tls: none
            password: ${SMTP_PASSWORD}
            from: bridge@example.com
            to: [ops@example.com]
            subject: "x"
            text: "y"
        routes:
          - to: [mail]

        """

    @Test("subscriptions and dead-letters need only state:, not the secrets; an error in state: still stops them")
    func readOnlyWithoutSecrets() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.secretsConfig)
        let unset = ["GRAPH_CLIENT_SECRET", "SMTP_PASSWORD"]
        let check = try await Self.run(["check", "--config", "bridge.yaml"], in: directory, removing: unset)
        #expect(check.status == 1, "the full load must still refuse the file")
        #expect(check.err.contains("GRAPH_CLIENT_SECRET"))

        let subscriptions = try await Self.run(["subscriptions", "--config", "bridge.yaml"], in: directory, removing: unset)
        #expect(subscriptions.status == 0, "\(subscriptions.err)")
        #expect(subscriptions.out.hasPrefix("no subscriptions in "))
        let list = try await Self.run(["dead-letters", "list", "--config", "bridge.yaml"], in: directory, removing: unset)
        #expect(list.status == 0, "\(list.err)")
        #expect(list.out == "no dead letters\n")
        let retry = try await Self.run(["dead-letters", "retry", "--all", "--config", "bridge.yaml"], in: directory, removing: unset)
        #expect(retry.status == 0, "\(retry.err)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("state.sqlite")), "a read-only command must not create the state file")

        // With a state file: the stored subscription is listed, still without the secrets.
        do {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: Self.logger)
            try await store.saveSubscription(
                SubscriptionRecord(
                    name: "inbox", graphID: "graph-inbox", resource: "me/messages", changeTypes: "created", clientState: "secret",
                    notificationURL: "https://bridge.example.com/notifications", expiration: nil, renewedAt: nil, managed: true))
        }
        let listed = try await Self.run(["subscriptions", "--config", "bridge.yaml"], in: directory, removing: unset)
        #expect(listed.status == 0, "\(listed.err)")
        #expect(listed.out.contains("graph-inbox"))
        #expect(!listed.out.contains("secret"))

        directory.write("bridge.yaml", Self.secretsConfig.replacingOccurrences(of: "path: state.sqlite", with: "path: ${STATE_DIR}/state.sqlite"))
        let broken = try await Self.run(["dead-letters", "list", "--config", "bridge.yaml"], in: directory, removing: unset + ["STATE_DIR"])
        #expect(broken.status == 1)
        #expect(broken.err.hasPrefix("bridge.yaml:10:9: environment variable STATE_DIR is not set"), "\(broken.err)")
        #expect(!broken.err.contains("GRAPH_CLIENT_SECRET"))
    }

    // MARK: dead letters at scale

    /// `count` dead letters of `sink`, dead at `deadAt`, made through the store API.
    static func makeDeadLetters(_ store: SQLiteStateStore, sink: String, count: Int, deadAt: Date) async throws {
        let now = Date()
        let events = (0..<count).map { n in
            BridgeEvent(
                id: EventID.make(at: now), receivedAt: now, subscription: SubscriptionReference(name: "audit-feed", id: feedID, resource: nil),
                changeType: "created", resource: "Users/1/Messages/DL-\(sink)-\(n)")
        }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
        let pending = try await store.unroutedEvents(limit: count)
        try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: [sink]) })
        let due = try await store.dueDeliveries(sink: sink, now: now.addingTimeInterval(1), limit: count, excluding: [])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for delivery in due {
                group.addTask { try await store.recordDeadLetter(deliveryID: delivery.id, attempts: 5, error: "503 Service Unavailable", at: deadAt) }
            }
            try await group.waitForAll()
        }
    }

    @Test("dead-letters: 514 listed as 100 and '414 more', filters, JSON lines, unknown ids refused, purge needs --yes off a terminal")
    func deadLettersAtScale() async throws {
        let directory = TemporaryDirectory()
        // `chat` is no longer in the configuration: its dead letters are still listed under that name.
        directory.write("bridge.yaml", Self.receiveOnlyConfig)
        do {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: Self.logger)
            try await Self.makeDeadLetters(store, sink: "chat", count: 500, deadAt: Date())
            try await Self.makeDeadLetters(store, sink: "audit", count: 14, deadAt: Date().addingTimeInterval(-3 * 3600))
        }
        func command(_ arguments: String...) async throws -> (status: Int32, out: String, err: String) {
            try await Self.run(["dead-letters"] + arguments + ["--config", "bridge.yaml"], in: directory, environment: EndToEndTests.environment)
        }

        let list = try await command("list")
        #expect(list.status == 0, "\(list.err)")
        let lines = Self.lines(list.out)
        #expect(lines.count == 101)
        #expect(lines.last == "414 more (use --limit)")
        #expect(lines.dropLast().allSatisfy { $0.contains("sink=audit") || $0.contains("sink=chat") })
        #expect(lines.contains { $0.contains("sink=chat") })

        let all = try await command("list", "--limit", "0")
        #expect(Self.lines(all.out).count == 514)
        #expect(!all.out.contains("more (use --limit)"))
        #expect(Self.lines(try await command("list", "--limit", "600").out).count == 514)

        let audit = Self.lines(try await command("list", "--sink", "audit").out)
        #expect(audit.count == 14)
        #expect(audit.allSatisfy { $0.contains("sink=audit") })
        let recent = Self.lines(try await command("list", "--since", "2h").out)
        #expect(recent.count == 101)
        #expect(recent.last == "400 more (use --limit)")
        #expect(Self.lines(try await command("list", "--before", "2h").out).count == 14)
        let day = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-2 * 86400)).prefix(10)
        #expect(Self.lines(try await command("list", "--before", String(day)).out) == ["no dead letters match"])
        let badSince = try await command("list", "--since", "yesterday")
        #expect(badSince.status != 0)
        #expect(badSince.err.contains("--since"))

        let json = try await command("list", "--json", "--limit", "2", "--sink", "chat")
        #expect(json.status == 0)
        let objects = try Self.lines(json.out).map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(objects.count == 2)
        #expect(
            objects.allSatisfy {
                $0["sink"] as? String == "chat" && $0["attempts"] as? Int == 5 && $0["error"] as? String == "503 Service Unavailable"
            })
        #expect(
            objects.allSatisfy {
                ($0["id"] as? Int) != nil && $0["event"] is String && $0["deadAt"] is String && $0["subscription"] as? String == "audit-feed"
            })
        #expect(json.err == "498 more (use --limit)\n")

        // Unknown ids: an error naming them, nothing queued.
        let firstID = try #require(lines.first?.split(separator: " ").first.map(String.init))
        let unknown = try await command("retry", "99999")
        #expect(unknown.status == 1)
        #expect(unknown.err.contains("99999"))
        let mixed = try await command("retry", firstID, "99999", "99998")
        #expect(mixed.status == 1)
        #expect(mixed.err.hasPrefix("no dead letters have ids 99999, 99998; nothing was changed"))
        #expect(Self.lines(try await command("list", "--limit", "0").out).count == 514)
        let one = try await command("retry", firstID)
        #expect(one.status == 0)
        #expect(one.out == "queued 1 dead letter for delivery\n")
        #expect(
            one.err
                == "note: 1 of them is for sink 'chat', which bridge.yaml no longer declares: it waits in the queue until a sink of that name is back\n"
        )
        #expect(Self.lines(try await command("list", "--limit", "0").out).count == 513)

        // purge: refused without --yes when standard input is not a terminal; ids, --sink and --before select.
        let refused = try await command("purge", "--sink", "audit")
        #expect(refused.status == 1)
        #expect(refused.err.contains("--yes"))
        #expect(Self.lines(try await command("list", "--sink", "audit").out).count == 14)
        let unknownPurge = try await command("purge", "99999", "--yes")
        #expect(unknownPurge.status == 1)
        #expect(unknownPurge.err.contains("99999"))
        let old = try await command("purge", "--before", "1h", "--yes")
        #expect(old.out == "deleted 14 dead letters\n")
        let chatIDs = Self.lines(try await command("list", "--limit", "2").out).prefix(2).compactMap {
            $0.split(separator: " ").first.map(String.init)
        }
        let byID = try await Self.run(["dead-letters", "purge", "--yes", "--config", "bridge.yaml"] + chatIDs, in: directory)
        #expect(byID.out == "deleted 2 dead letters\n")
        #expect(Self.lines(try await command("list").out).last == "397 more (use --limit)")
    }

    /// Runs `graph-bridge ARGUMENTS` on a pseudo-terminal (Python's pty), answers `answer` to its
    /// `[y/N]` prompt, and returns the exit status and everything the terminal showed.
    static func onTerminal(_ arguments: [String], answer: String, in directory: TemporaryDirectory) async throws -> (status: Int32, shown: String) {
        let script = """
            import os, pty, sys
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            shown = b""
            while b"[y/N]" not in shown:
                try:
                    data = os.read(fd, 1024)
                except OSError:
                    break
                if not data: break
                shown += data
            os.write(fd, sys.stdin.buffer.read())
            while True:
                try:
                    data = os.read(fd, 1024)
                except OSError:
                    break
                if not data: break
                shown += data
            _, status = os.waitpid(pid, 0)
            sys.stdout.write(shown.decode())
            sys.exit(os.WEXITSTATUS(status))
            """
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, BridgeProcess.executable] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data((answer + "\n").utf8))
        try input.fileHandleForWriting.close()
        return await onOwnThread {
            let shown = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: shown, as: UTF8.self))
        }
    }

    @Test("purge on a terminal asks first: no keeps the dead letters, yes deletes them")
    func purgeAsksOnATerminal() async throws {
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.receiveOnlyConfig)
        do {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: Self.logger)
            try await Self.makeDeadLetters(store, sink: "chat", count: 3, deadAt: Date())
        }
        let purge = ["dead-letters", "purge", "--sink", "chat", "--config", "bridge.yaml"]
        let declined = try await Self.onTerminal(purge, answer: "n", in: directory)
        #expect(declined.status == 0, "\(declined.shown)")
        #expect(declined.shown.contains("delete 3 dead letters for good? [y/N]"))
        #expect(declined.shown.contains("nothing deleted"))
        #expect(Self.lines(try await Self.run(["dead-letters", "list", "--config", "bridge.yaml"], in: directory).out).count == 3)

        let confirmed = try await Self.onTerminal(purge, answer: "y", in: directory)
        #expect(confirmed.status == 0, "\(confirmed.shown)")
        #expect(confirmed.shown.contains("deleted 3 dead letters"))
        #expect(try await Self.run(["dead-letters", "list", "--config", "bridge.yaml"], in: directory).out == "no dead letters\n")
    }
}
