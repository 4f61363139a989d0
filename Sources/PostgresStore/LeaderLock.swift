import BridgeCore
public import BridgeSettings
import Foundation
public import Logging
import PostgresNIO
import Synchronization

/// Leadership among the replicas that share one PostgreSQL database: a session-level advisory
/// lock (`pg_try_advisory_lock`) held on a connection of its own, outside the store's pool.
///
/// The server releases the lock the moment that session ends: a leader killed with `kill -9`
/// (its socket closes), a leader whose connection is cut (the server's TCP keepalives, set to
/// about 25 s on this session, notice it), a server restart. The leader notices on its side by
/// probing the session every `probeInterval` and stops leading when a probe fails or takes longer
/// than `probeTimeout`: then its connection is closed, so it can never go on leading while another
/// replica holds the lock. Followers try again every `retryInterval`.
public final class LeaderLock: Sendable {
    /// The advisory lock key of the leader election ("graphbrL"; the schema migrations use another).
    public static let key: Int64 = 0x6772_6170_6862_724C

    public let location: PostgresLocation
    let retryInterval: Duration
    let probeInterval: Duration
    let probeTimeout: Duration
    /// What every wait is measured on: the retry of a follower, the probe interval, the probe timeout.
    let clock: any Clock<Duration>
    let logger: Logger

    /// - Parameter clock: the clock its waits run on (a test moves one by hand).
    public init(
        location: PostgresLocation, retryInterval: Duration = .seconds(5), probeInterval: Duration = .seconds(3),
        probeTimeout: Duration = .seconds(10), clock: any Clock<Duration> = ContinuousClock(), logger: Logger
    ) {
        self.location = location
        self.retryInterval = retryInterval
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.clock = clock
        self.logger = logger
    }

    /// Until cancelled: waits to hold the lock, runs `lead` while holding it, and cancels `lead`
    /// as soon as the lock's session is lost (then tries again). `lead` is also cancelled, and the
    /// lock released, when this task is cancelled. `changed` is told each change of role (true:
    /// leading) before `lead` starts and after it has ended.
    public func run(changed: @escaping @Sendable (Bool) -> Void = { _ in }, lead: @escaping @Sendable () async -> Void) async {
        var lastFailure: String?
        while !Task.isCancelled {
            do {
                if let connection = try await acquireUnlessCancelled() {
                    lastFailure = nil
                    logger.notice("this replica is the leader: it manages the subscriptions", metadata: ["bridge.lock_key": "\(Self.key)"])
                    changed(true)
                    await hold(connection, while: lead)
                    changed(false)
                    Self.close(connection)
                    if !Task.isCancelled {
                        logger.warning("this replica lost the leader lock's connection: it stopped managing subscriptions and tries to lead again")
                    }
                }
            } catch  where Task.isCancelled {
                return
            } catch {
                // Said once per outage: a follower retries every few seconds.
                let text = "\(error)"
                if text != lastFailure {
                    logger.warning("cannot reach PostgreSQL to ask for the leader lock; trying again", metadata: ["error": "\(text)"])
                    lastFailure = text
                }
            }
            try? await clock.sleep(for: retryInterval)
        }
    }

    /// ``acquire()``, given up at once when this task is cancelled: a connect or query to a server
    /// that has just cut sessions may not return, not even to cancellation, and a lock task that
    /// waited for it would not end when the bridge stops (a test saw one hang past 30 s). A session
    /// that gets the lock after it was given up is closed, so the lock is not held by nobody's task.
    func acquireUnlessCancelled() async throws -> PostgresConnection? {
        let outcome = FirstAnswer<Result<PostgresConnection?, any Error>>()
        let attempt = Task {
            let result: Result<PostgresConnection?, any Error>
            do { result = .success(try await self.acquire()) } catch { result = .failure(error) }
            if !outcome.give(result), case .success(let connection?) = result { Self.close(connection) }
        }
        return try await withTaskCancellationHandler {
            try await outcome.value().get()
        } onCancel: {
            outcome.give(.failure(CancellationError()))
            attempt.cancel()
        }
    }

    /// One attempt: a new session that asks for the lock. The session when it holds the lock, nil
    /// when another replica does (the session is closed).
    func acquire() async throws -> PostgresConnection? {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: Self.configuration(location), id: 1, logger: logger)
        } catch let error as PSQLError {
            throw PostgresStoreError(error, location: location)
        }
        do {
            var held = false
            for try await value in try await connection.query("SELECT pg_try_advisory_lock(\(Self.key))", logger: logger).decode(Bool.self) {
                held = value
            }
            guard held else {
                try? await connection.close()
                return nil
            }
            // Unix sockets ignore these; over TCP the server drops a vanished leader's session (and its lock) in about 25 s.
            for setting in [
                "tcp_keepalives_idle = 10", "tcp_keepalives_interval = 5", "tcp_keepalives_count = 3", "application_name = 'graph-bridge leader'",
            ] {
                _ = try? await connection.query(PostgresQuery(unsafeSQL: "SET " + setting), logger: logger)
            }
            return connection
        } catch {
            try? await connection.close()
            if let error = error as? PSQLError { throw PostgresStoreError(error, location: location) }
            throw error
        }
    }

    /// Runs `lead` until it returns, this task is cancelled, or the session is lost.
    func hold(_ connection: PostgresConnection, while lead: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await lead() }
            group.addTask { await self.watch(connection) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns when the session is closed, a probe fails or takes too long (the connection is then
    /// closed), or the task is cancelled.
    func watch(_ connection: PostgresConnection) async {
        let tick = min(probeInterval, .milliseconds(500))
        var sinceProbe = Duration.zero
        while !Task.isCancelled {
            if connection.isClosed { return }
            if sinceProbe >= probeInterval {
                sinceProbe = .zero
                guard await probe(connection) else { return }
            }
            try? await clock.sleep(for: tick)
            sinceProbe += tick
        }
    }

    /// `SELECT 1` on the session, bounded by `probeTimeout`; a failed or late probe closes the connection.
    ///
    /// Neither the query nor the close is awaited past the timeout: on a session the server has
    /// just terminated, a query (and the close that should end it) may never return, not even
    /// when cancelled, and a probe that waited for it would keep this replica leading beside the
    /// replica that took the released lock. A parallel test run saw two leaders that way.
    private func probe(_ connection: PostgresConnection) async -> Bool {
        let answer = FirstAnswer<Bool>()
        let timer = Task {
            try? await self.clock.sleep(for: self.probeTimeout)
            answer.give(false)
        }
        let query = Task {
            answer.give((try? await connection.query("SELECT 1", logger: self.logger).collect()) != nil)
            timer.cancel()
        }
        let alive = await withTaskCancellationHandler {
            await answer.value()
        } onCancel: {
            answer.give(false)
        }
        if !alive {
            query.cancel()
            Self.close(connection)
        }
        return alive
    }

    /// Closes `connection` without waiting for it (see ``probe(_:)``): the lock goes with the session.
    static func close(_ connection: PostgresConnection) {
        Task { try? await connection.close() }
    }

    /// The connection settings of a single session to `location` (TLS as `sslmode` says).
    static func configuration(_ location: PostgresLocation) throws -> PostgresConnection.Configuration {
        var configuration =
            if let socket = location.socketPath {
                PostgresConnection.Configuration(
                    unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
            } else {
                PostgresConnection.Configuration(
                    host: location.host, port: location.port, username: location.user, password: location.password, database: location.database,
                    tls: try PostgresStateStore.connectionTLS(location))
            }
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}

/// The first of several answers, awaited once: later ones are dropped.
private final class FirstAnswer<Value: Sendable>: Sendable {
    private let state = Mutex<(answer: Value?, waiter: CheckedContinuation<Value, Never>?)>((nil, nil))

    /// Gives `answer`; false when an earlier one was given (this one is dropped).
    @discardableResult
    func give(_ answer: Value) -> Bool {
        let (first, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Value, Never>?) in
            guard state.answer == nil else { return (false, nil) }
            state.answer = answer
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume(returning: answer)
        return first
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let answer = state.withLock { state -> Value? in
                if let answer = state.answer { return answer }
                state.waiter = continuation
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }
}
