import CurlKit
import Foundation
import TestSupport
import Testing

/// Several real `graph-bridge run` processes on one PostgreSQL database (SPEC section 12): one
/// leader manages the subscriptions, every replica accepts notifications, and a survivor takes
/// over when the leader is killed. Skipped, with a message, without the PostgreSQL binaries.
///
/// Each test takes a process share; only the one that times a 503 takes the whole machine. (The
/// others wait on 30 s leases and takeovers with room to spare; as exclusive tests they held the
/// machine for a minute of a parallel run.)
@Suite("replicas on PostgreSQL")
struct ReplicaEndToEndTests {
    /// `state.lease` of the replicas the kill test runs: short, so the takeover after the kill is
    /// quick (the default 30 s held a process share of the test run that long).
    static let leaseSeconds = 6

    /// The leader lock's key (`LeaderLock.key`, "graphbrL").
    static let leaderLockKey: Int64 = 0x6772_6170_6862_724C

    /// The same configuration for every replica but the port it listens on (behind a load
    /// balancer each would listen on the same port of its own machine); Graph notifies `publicPort`.
    static func config(banner: SimulatorBanner, url: String, listen: Int, publicPort: Int, expiration: String = "20s") -> String {
        banner.graphSection + serverConfigSection(listen: "127.0.0.1:\(listen)", publicUrl: "http://127.0.0.1:\(publicPort)") + """
        state:
          url: "\(url)"
        subscriptions:
          - name: inbox
            resource: users/alice@contoso.com/mailFolders('Inbox')/messages
            changeTypes: [created]
            expiration: \(expiration)
        sinks:
          audit: { type: file, path: audit.jsonl }
        routes:
          - to: [audit]

        """
    }

    /// A change notification for `id` with `clientState`; its resource ends in `TAG-N`.
    static func change(id: String, clientState: String, _ tag: String, _ n: Int) -> [UInt8] {
        Array(
            #"{"value":[{"subscriptionId":"\#(id)","clientState":"\#(clientState)","changeType":"created","resource":"Users/1/Messages/\#(tag)-\#(n)","resourceData":{"@odata.etag":"\#(n)"}}]}"#
                .utf8)
    }

    static func lifecycle(id: String, clientState: String, _ event: String) -> [UInt8] {
        Array(
            #"{"value":[{"subscriptionId":"\#(id)","clientState":"\#(clientState)","lifecycleEvent":"\#(event)","resource":"users/alice@contoso.com/mailFolders('Inbox')/messages","organizationId":"t"}]}"#
                .utf8)
    }

    /// The stored subscription's Graph id and clientState, once it has an id.
    static func storedSubscription(_ server: PostgresServer, database: String) async throws -> (id: String, clientState: String)? {
        let rows = try await server.query(
            database: database, "SELECT graph_id, client_state FROM subscriptions WHERE name = 'inbox' AND graph_id IS NOT NULL")
        guard let row = rows.first else { return nil }
        let fields = row.split(separator: "|").map(String.init)
        return fields.count == 2 ? (fields[0], fields[1]) : nil
    }

    static func count(_ text: String, in bridges: [BridgeProcess]) -> Int {
        bridges.reduce(0) { total, bridge in total + bridge.log.split(separator: "\n").filter { $0.contains(text) }.count }
    }

    @Test(
        "two replicas: the leader creates the subscription once, the follower accepts its notifications and hands its lifecycle events to the leader; after kill -9 of the leader the follower takes over upkeep within 30 s",
        .machine(.processes)
    )
    func leaderAndFollower() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let directory = TemporaryDirectory()
        let simulator = try BridgeProcess(["simulator", "--log-format", "json"], directory: directory.path)
        let banner = try await SimulatorBanner(of: simulator)
        let publicPort = try reservedLoopbackPort()
        let url = server.url(database: database)
        directory.write("a.yaml", Self.config(banner: banner, url: url, listen: publicPort, publicPort: publicPort))
        directory.write("b.yaml", Self.config(banner: banner, url: url, listen: 0, publicPort: publicPort))

        // The test holds the leader lock while both replicas start: neither leads, neither creates.
        let (psql, arguments) = server.psqlCommand(database: database, "SELECT pg_advisory_lock(\(Self.leaderLockKey)); SELECT pg_sleep(600)")
        let holder = ChildProcess()
        holder.executableURL = URL(fileURLWithPath: psql)
        holder.arguments = arguments
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        try #require(
            try await eventually {
                try await server.query(database: database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").first == "1"
            }, "the test's psql did not take the lock")

        let a = try BridgeProcess(["run", "--config", "a.yaml", "--log-format", "json"], directory: directory.path)
        let b = try BridgeProcess(["run", "--config", "b.yaml", "--log-format", "json"], directory: directory.path)
        let (portA, portB) = (try await a.port(), try await b.port())
        #expect(try await Self.storedSubscription(server, database: database) == nil, "no replica may create while another holds the lock")
        let (leading, requests) = ("graph_bridge_leader", "graph_bridge_graph_requests_total")
        for bridge in [a, b] { #expect(try await bridge.metric(leading) != 1, "neither leads: \(bridge.log)") }

        // The lock is free: one replica leads and creates the subscription; the other learns of it
        // from the shared records (it started before there was one).
        // (psql ignores SIGTERM, and a backend busy in pg_sleep would notice a killed client only at its end.)
        _ = try await server.query(database: database, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        // Graph's answers to creates, as each replica counts them (the leader gauge is 1 before its manager starts).
        let created = ["operation": "create_subscription", "status": "201"]
        func creates(_ bridges: [BridgeProcess]) async throws -> Double {
            var total = 0.0
            for bridge in bridges { total += try await bridge.metric(requests, labels: created) ?? 0 }
            return total
        }
        #expect(try await eventually(timeout: .seconds(30)) { try await creates([a, b]) == 1 }, "\(a.log)\n\(b.log)")
        let aLeads = try await a.metric(leading) == 1
        let (leader, follower, followerPort) = aLeads ? (a, b, portB) : (b, a, portA)
        #expect(try await leader.metric(leading) == 1, "\(a.log)\n\(b.log)")
        #expect(try await follower.metric(leading) == 0, "one leader: \(a.log)\n\(b.log)")
        // The create's 201 is counted before the leader stores the record: wait for the record.
        #expect(try await eventually(timeout: .seconds(10)) { try await Self.storedSubscription(server, database: database) != nil }, "\(a.log)\n\(b.log)")
        let stored = try #require(try await Self.storedSubscription(server, database: database))
        let client = CurlClient()
        // The operator commands read the shared records, whichever replica's configuration they are given.
        let (status, out, err) = try await runToCompletion(["subscriptions", "--config", aLeads ? "b.yaml" : "a.yaml"], directory: directory.path)
        #expect(status == 0, "\(err)")
        #expect(out.contains(stored.id), "\(out)")

        // A notification for it posted to the follower is journaled and delivered (Graph's retries
        // of the same change are duplicates, so posting until it shows up delivers it once).
        let audit = directory.file("audit.jsonl")
        var delivered = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !delivered, ContinuousClock.now < deadline {
            #expect(
                try await EndToEndTests.post(client, port: followerPort, body: Self.change(id: stored.id, clientState: stored.clientState, "rep", 1))
                    == 202)
            delivered = try await eventually(timeout: .milliseconds(500)) { EndToEndTests.numbers("rep", in: jsonLines(audit)).contains(1) }
        }
        #expect(delivered, "\(follower.log)")

        // A lifecycle event that reaches the follower is acted on by the leader.
        #expect(
            try await EndToEndTests.post(
                client, port: followerPort, path: "/lifecycle",
                body: Self.lifecycle(id: stored.id, clientState: stored.clientState, "reauthorizationRequired")) == 202)
        #expect(
            try await leader.waitForMetric(requests, labels: ["operation": "reauthorize_subscription", "status": "204"], timeout: .seconds(15)),
            "\(leader.log)")
        for operation in ["reauthorize_subscription", "renew_subscription"] {
            #expect(try await follower.metric(requests, labels: ["operation": operation]) == nil, "only the leader talks to Graph: \(operation)")
        }

        // kill -9 of the leader: the follower takes over within 30 s, reuses the subscription and renews it.
        leader.signal(SIGKILL)
        _ = await leader.waitForExit()
        let killed = ContinuousClock.now
        #expect(try await follower.waitForMetric(leading, atLeast: 1, timeout: .seconds(30)), "\(follower.log)")
        #expect(ContinuousClock.now - killed < .seconds(30))
        #expect(
            try await follower.waitForMetric(requests, labels: ["operation": "renew_subscription", "status": "200"], timeout: .seconds(30)),
            "\(follower.log)")
        #expect(
            try await follower.metric(requests, labels: ["operation": "get_subscription", "status": "200"]) ?? 0 >= 1,
            "it checked the stored subscription with Graph (reused it): \(follower.log)")
        #expect(try await creates([follower]) == 0, "never two creates")
        #expect(try await Self.storedSubscription(server, database: database)?.id == stored.id)

        follower.signal(SIGTERM)
        #expect(await follower.waitForExit() == 0, "\(follower.log)")
        simulator.signal(SIGTERM)
        _ = await simulator.waitForExit()
        await client.shutdown()
    }

    /// The receive-only configuration of the other end-to-end tests on `url`, each replica with a file of its own.
    static func receiveOnlyConfig(url: String, audit: String) -> String {
        EndToEndTests.config(auditPath: audit).replacingOccurrences(of: "path: state.sqlite", with: "url: \"\(url)\"")
    }

    @Test("three replicas: notifications posted to any of them are all delivered, each exactly once", .machine(.processes))
    func threeReplicasDeliverEachOnce() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let directory = TemporaryDirectory()
        var replicas: [BridgeProcess] = []
        var ports: [Int] = []
        for name in ["a", "b", "c"] {
            directory.write("\(name).yaml", Self.receiveOnlyConfig(url: server.url(database: database), audit: "\(name).jsonl"))
            let replica = try BridgeProcess(
                ["run", "--config", "\(name).yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
            replicas.append(replica)
            ports.append(try await replica.port())
        }
        let client = CurlClient()
        let count = 90
        for n in 1...count {
            #expect(try await EndToEndTests.post(client, port: ports[n % 3], body: EndToEndTests.notification("three", n)) == 202)
        }
        func delivered() -> [Int] {
            ["a", "b", "c"].flatMap { EndToEndTests.numbers("three", in: jsonLines(directory.file("\($0).jsonl"))) }
        }
        #expect(try await eventually(timeout: .seconds(30)) { delivered().count >= count }, "\(replicas.map(\.log))")
        for replica in replicas {
            replica.signal(SIGTERM)
            #expect(await replica.waitForExit() == 0, "\(replica.log)")
        }
        #expect(delivered().sorted() == Array(1...count), "each notification exactly once")
        #expect(Set(["a", "b", "c"].map { jsonLines(directory.file("\($0).jsonl")).isEmpty }) == [false], "every replica delivers")
        await client.shutdown()
    }

    @Test("kill -9 of the replica that holds failing deliveries loses none: another replica delivers them once its lease (state.lease) lapses", .machine(.processes))
    func killedReplicasDeliveriesAreTakenOver() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let directory = TemporaryDirectory()
        let receiver = try await HTTPReceiver.start()
        let client = CurlClient()
        // The webhook answers 500, after 300 ms (so deliveries are in flight, claimed), until the script is cleared.
        let script =
            #"{"path": "/hook", "responses": [\#(Array(repeating: #"{"status": 500, "delay_ms": 300}"#, count: 2000).joined(separator: ","))]}"#
        _ = try await client.execute(
            HTTPRequest(
                method: "POST", url: receiver.url("/_control/script"), headers: [("Content-Type", "application/json")], body: Array(script.utf8)))
        // The numbers of the notifications the receiver has taken since the last clear (its file keeps the failed ones too).
        func received() async throws -> Set<Int> {
            let answer = try await client.execute(HTTPRequest(method: "GET", url: receiver.url("/_control/requests"), headers: [], body: []))
            let requests = try JSONDecoder().decode([HTTPReceiver.RecordedRequest].self, from: Data(answer.body))
            return Set(EndToEndTests.numbers("lease", in: requests.map { String(decoding: $0.body, as: UTF8.self) }))
        }
        let config = EndToEndTests.config()
            .replacingOccurrences(of: "path: state.sqlite", with: "url: \"\(server.url(database: database))\"\n  lease: \(Self.leaseSeconds)s")
            .replacingOccurrences(of: "audit: { type: file, path: audit.jsonl }", with: "audit: { type: webhook, url: \"\(receiver.url("/hook"))\" }")
        directory.write("bridge.yaml", config)

        let first = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await first.port()
        let count = 10
        for n in 1...count {
            #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("lease", n)) == 202)
        }
        // Every delivery has failed at least once, and all are the first replica's.
        #expect(try await eventually(timeout: .seconds(15)) { try await received().count == count })
        #expect(try await server.query(database: database, "SELECT count(*) FROM deliveries").first == "\(count)")
        let second = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        _ = try await second.port()

        // Killed while it holds claims: those wait for its lease to lapse, the others are free at once.
        #expect(
            try await eventually { try await server.query(database: database, "SELECT count(*) FROM deliveries WHERE claimed_by IS NOT NULL").first != "0" }
        )
        first.signal(SIGKILL)
        _ = await first.waitForExit()
        _ = try await client.execute(HTTPRequest(method: "POST", url: receiver.url("/_control/clear"), headers: [], body: []))
        // The second replica claims them once the first one's lease has lapsed: its worker wakes
        // at that lease's end, well before its longest wait (30 s) would have it look again.
        #expect(try await eventually(timeout: .seconds(Self.leaseSeconds + 18)) { try await received() == Set(1...count) }, "\(second.log)")
        #expect(try await eventually { try await server.query(database: database, "SELECT count(*) FROM deliveries").first == "0" })
        second.signal(SIGTERM)
        #expect(await second.waitForExit() == 0, "\(second.log)")
        await receiver.stop()
        await client.shutdown()
    }

    @Test("a replica that loses PostgreSQL answers 503 and recovers when the server is back, without a restart", .machine(.exclusive))
    func lostDatabaseAnswers503() async throws {
        guard let server = try await PostgresServer.dedicated() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        defer { server.remove() }
        let database = try await server.createDatabase()
        let directory = TemporaryDirectory()
        directory.write("bridge.yaml", Self.receiveOnlyConfig(url: server.url(database: database), audit: "audit.jsonl"))
        let bridge = try BridgeProcess(
            ["run", "--config", "bridge.yaml", "--log-format", "json"], directory: directory.path, environment: EndToEndTests.environment)
        let port = try await bridge.port()
        let client = CurlClient()
        let audit = directory.file("audit.jsonl")
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("lost", 1)) == 202)
        #expect(try await eventually { EndToEndTests.numbers("lost", in: jsonLines(audit)) == [1] })

        try await server.stop()
        let started = ContinuousClock.now
        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("lost", 2)) == 503, "\(bridge.log)")
        let answeredIn = ContinuousClock.now - started
        #expect(answeredIn < .seconds(15), "Graph waits only a few seconds for an answer: \(answeredIn)")

        try await server.start()
        var status = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while status != 202, ContinuousClock.now < deadline {
            status = try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("lost", 2))
            if status != 202 { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(status == 202, "\(bridge.log)")
        #expect(try await eventually(timeout: .seconds(30)) { EndToEndTests.numbers("lost", in: jsonLines(audit)) == [1, 2] }, "\(bridge.log)")
        bridge.signal(SIGTERM)
        #expect(await bridge.waitForExit() == 0, "\(bridge.log)")
        await client.shutdown()
    }
}
