import CurlKit
import Foundation
import GraphSimulator
public import Logging
import ServiceLifecycle
import UnixSignals

/// `graph-bridge simulator`: the Graph simulator on its own, to try a `bridge.yaml` (with
/// `authorityUrl`/`baseUrl` pointing at it) or `login` without a tenant; and `graph-bridge
/// simulator mail`, which sends one mail through a running simulator's `sendMail`.
public enum SimulatorRunner {
    /// Runs the simulator on `127.0.0.1:port` (0: any free port) until SIGTERM or SIGINT.
    ///
    /// - Parameters:
    ///   - mailEvery: once a subscription exists, a mail from ``SampleMails`` lands in alice's inbox this often.
    ///   - retrySchedule: waits between retries of an undelivered notification; nil: Graph's
    ///     (``GraphSimulator/graphRetrySchedule``).
    public static func run(
        port: Int, approveDeviceCodes: Bool, mailEvery: Duration?, retrySchedule: [Duration]? = nil, logger: Logger,
        print: @escaping @Sendable (String) -> Void
    ) async throws {
        var configuration = GraphSimulator.Configuration()
        configuration.port = port
        if let retrySchedule { configuration.retrySchedule = retrySchedule }
        if approveDeviceCodes { configuration.autoApproveDeviceCodesAs = SimulatedUser.alice.userPrincipalName }
        let simulator = try GraphSimulator(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: simulator)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let bound = try await simulator.waitUntilReady()
            print("""
                graph simulator listening on http://127.0.0.1:\(bound)
                  tenant:        \(simulator.tenantID)
                  clientId:      \(configuration.clientID)
                  clientSecret:  \(configuration.clientSecret ?? "-")
                  authorityUrl:  \(simulator.authorityURL)
                  baseUrl:       \(simulator.graphBaseURL)
                  mailboxes:     \(configuration.users.map(\.userPrincipalName).joined(separator: ", "))
                  retries:       \(describe(configuration.retrySchedule))
                  send a mail:   graph-bridge simulator mail --port \(bound) --to \(SimulatedUser.alice.userPrincipalName)
                """)
            if let mailEvery {
                tasks.addTask {
                    while simulator.subscriptions.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
                    let alice = EmailAddress(name: SimulatedUser.alice.displayName, address: SimulatedUser.alice.userPrincipalName)
                    var n = 0
                    while !Task.isCancelled {
                        _ = try? simulator.createMessage(SampleMails.mail(n, to: [alice]), in: SimulatedUser.alice.userPrincipalName)
                        n += 1
                        try await Task.sleep(for: mailEvery)
                    }
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }

    /// `1m, 2m, 4m, ...`: the retry waits as `run` prints them.
    static func describe(_ schedule: [Duration]) -> String {
        guard !schedule.isEmpty else { return "none (an undelivered notification is dropped at once)" }
        var elapsed = Duration.zero
        for wait in schedule { elapsed += wait }
        let last = "the last \(describe(elapsed)) after the first attempt"
        if Set(schedule).count == 1 { return "\(schedule.count), \(describe(schedule[0])) apart (\(last))" }
        return "\(schedule.count), after waits of \(schedule.map { describe($0) }.joined(separator: ", ")) (\(last))"
    }

    static func describe(_ duration: Duration) -> String {
        let milliseconds = Int64(duration.components.seconds) * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 3_600_000 == 0, milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0, milliseconds > 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }

    // MARK: graph-bridge simulator mail

    /// One mail for ``sendMail(_:)``.
    public struct Mail: Sendable {
        /// The simulator's port on `host`.
        public var port: Int
        public var host: String = "127.0.0.1"
        /// The sending mailbox (one of the simulator's).
        public var from: String = SimulatedUser.bob.userPrincipalName
        public var to: [String] = [SimulatedUser.alice.userPrincipalName]
        public var cc: [String] = []
        /// Nil: subject, body and importance of a mail from ``SampleMails``.
        public var subject: String?
        /// Nil: the sample's body (without a subject) or empty.
        public var body: String?
        /// `text` or `html`.
        public var contentType: String = "text"
        /// `low`, `normal` or `high`; nil: the sample's or `normal`.
        public var importance: String?
        public var saveToSentItems: Bool = true

        public init(port: Int) { self.port = port }
    }

    /// Why `mail` failed, in words for the terminal.
    public struct MailError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Signs in to the running simulator with the client credentials it prints (the defaults of
    /// ``GraphSimulator/Configuration``) and `POST`s `/v1.0/users/{from}/sendMail`, as a Graph client
    /// would. Returns the line to print (`sent "..." from ... to ...`).
    ///
    /// - Throws: ``MailError`` when nothing answers on the port or Graph refuses the mail (its code and message).
    public static func sendMail(_ mail: Mail) async throws -> String {
        let client = CurlClient(configuration: .init(userAgent: "graph-bridge-simulator-mail"))
        do {
            let line = try await sendMail(mail, client: client)
            await client.shutdown()
            return line
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private static func sendMail(_ mail: Mail, client: CurlClient) async throws -> String {
        let defaults = GraphSimulator.Configuration()
        let base = "http://\(mail.host):\(mail.port)"
        func execute(_ request: CurlKit.HTTPRequest) async throws -> CurlKit.HTTPResponse {
            do {
                return try await client.execute(request)
            } catch let error as TransportError {
                throw MailError(description: "no Graph simulator answers on \(mail.host):\(mail.port) (\(error.message)); start one with `graph-bridge simulator --port \(mail.port)`")
            }
        }
        let form = [
            ("client_id", defaults.clientID), ("client_secret", defaults.clientSecret ?? ""),
            ("scope", "https://graph.microsoft.com/.default"), ("grant_type", "client_credentials"),
        ]
        .map { "\($0.0)=\(formEscape($0.1))" }.joined(separator: "&")
        let tokenResponse = try await execute(
            CurlKit.HTTPRequest(
                method: "POST", url: "\(base)/\(defaults.tenantID)/oauth2/v2.0/token", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: Array(form.utf8), timeout: .seconds(10), connectTimeout: .seconds(3)))
        guard tokenResponse.status == 200, let token = JSONValue.parse(tokenResponse.body)?["access_token"]?.stringValue else {
            throw MailError(description: "\(base) did not issue a token (HTTP \(tokenResponse.status)): is it `graph-bridge simulator`? \(tokenResponse.bodyText.prefix(300))")
        }

        var subject = mail.subject ?? ""
        var body = mail.body ?? ""
        var importance = mail.importance ?? "normal"
        if mail.subject == nil {
            let sample = SampleMails.mail(Int.random(in: 0..<SampleMails.all.count))
            subject = sample.subject
            if mail.body == nil { body = sample.body }
            if mail.importance == nil { importance = sample.importance.rawValue }
        }
        func recipients(_ addresses: [String]) -> JSONValue {
            .array(addresses.map { .object(["emailAddress": .object(["address": .string($0)])]) })
        }
        let payload: JSONValue = .object([
            "message": .object([
                "subject": .string(subject),
                "body": .object(["contentType": .string(mail.contentType), "content": .string(body)]),
                "toRecipients": recipients(mail.to),
                "ccRecipients": recipients(mail.cc),
                "importance": .string(importance),
            ]),
            "saveToSentItems": .bool(mail.saveToSentItems),
        ])
        let sender = mail.from.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? mail.from
        let response = try await execute(
            CurlKit.HTTPRequest(
                method: "POST", url: "\(base)/v1.0/users/\(sender)/sendMail",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: payload.bytes,
                timeout: .seconds(10), connectTimeout: .seconds(3)))
        guard response.status == 202 else {
            let error = JSONValue.parse(response.body)?["error"]
            let code = error?["code"]?.stringValue ?? "HTTP \(response.status)"
            let message = error?["message"]?.stringValue ?? response.bodyText
            throw MailError(description: "the simulator refused the mail: \(code): \(message)")
        }
        let copies = mail.to + mail.cc
        return "sent \"\(subject)\" from \(mail.from) to \(copies.joined(separator: ", "))"
    }

    private static func formEscape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}
