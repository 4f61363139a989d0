import BridgeCore
import BridgeSettings
import SinkAPI
import FileSink
import Foundation
import Logging
import StdoutSink
import Testing
import TestSupport

let context = SinkContext(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))

func mailEvent(subject: String = "Quarterly numbers") -> BridgeEvent {
    BridgeEvent(
        id: EventID.make(),
        receivedAt: Date(timeIntervalSince1970: 1_796_000_000.123),
        subscription: SubscriptionReference(name: "inbox", id: "sub-1", resource: "users/alice/messages"),
        changeType: "created",
        resource: "Users/1/Messages/2",
        resourceData: .object(["@odata.type": .string("#Microsoft.Graph.Message"), "id": .string("2")]),
        tenantId: "tenant",
        data: .object([
            "subject": .string(subject),
            "from": .object(["emailAddress": .object(["name": .string("Bob"), "address": .string("bob@contoso.com")])]),
        ])
    )
}

@Suite("file sink")
struct FileSinkTests {
    @Test("appends each event as exactly its JSON, one per line, in a 0600 file")
    func appends() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("audit.jsonl")
        let sink = try FileSink(name: "audit", configuration: .init(path: path), context: context)
        let events = [mailEvent(subject: "one \"quoted\"\nline"), mailEvent(subject: "zwei — ü")]
        for (index, event) in events.enumerated() {
            try await sink.deliver(event, attempt: DeliveryAttempt(number: 1, deliveryID: Int64(index)))
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty)
        #expect(lines[0] == Substring(String(decoding: events[0].encoded(), as: UTF8.self)))
        for (line, event) in zip(lines, events) {
            #expect(try BridgeEvent(json: JSONParser.parse(String(line))) == event)
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    /// Loads a bridge.yaml with one file sink `audit` whose block holds `lines`.
    func load(_ lines: [String], in directory: TemporaryDirectory) throws -> BridgeConfiguration {
        let yaml = "sinks:\n  audit:\n    type: file\n" + lines.map { "    \($0)\n" }.joined()
        let file = directory.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8))
        return try BridgeConfiguration.load(path: file, registry: SinkRegistry([FileSink.self]), environment: [:])
    }

    @Test("mode: sets the permissions of a new file, whatever the umask; unquoted octal works too")
    func mode() async throws {
        for (written, expected) in [("\"0640\"", 0o640), ("0644", 0o644), ("\"600\"", 0o600)] {
            let directory = TemporaryDirectory()
            let configuration = try load(["path: audit.jsonl", "mode: \(written)"], in: directory)
            let sink = try configuration.sinks[0].factory.makeSink(context: context)
            try await sink.deliver(mailEvent(), attempt: DeliveryAttempt(number: 1, deliveryID: 1))
            let attributes = try FileManager.default.attributesOfItem(atPath: directory.file("audit.jsonl"))
            #expect((attributes[.posixPermissions] as? Int) == expected, "mode: \(written)")
        }
    }

    @Test("a bad mode is a config error at the value", arguments: ["rw-r-----", "0999", "1777", "07640", "\"\"", "0440"])
    func badMode(_ value: String) throws {
        let directory = TemporaryDirectory()
        #expect {
            try load(["path: audit.jsonl", "mode: \(value)"], in: directory)
        } throws: { error in
            let errors = (error as? ConfigErrors)?.errors ?? []
            return errors.count == 1 && errors[0].mark == ConfigMark(line: 5, column: 11) && errors[0].message.contains("mode")
        }
    }

    @Test("a rotated file is reopened: new events go to a new file at the path")
    func rotation() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("audit.jsonl")
        let sink = try FileSink(name: "audit", configuration: .init(path: path), context: context)
        try await sink.deliver(mailEvent(subject: "before"), attempt: DeliveryAttempt(number: 1, deliveryID: 1))
        try FileManager.default.moveItem(atPath: path, toPath: directory.file("audit.jsonl.1"))
        try await sink.deliver(mailEvent(subject: "after"), attempt: DeliveryAttempt(number: 1, deliveryID: 2))
        #expect(try String(contentsOfFile: directory.file("audit.jsonl.1"), encoding: .utf8).contains("before"))
        let current = try String(contentsOfFile: path, encoding: .utf8)
        #expect(current.contains("after") && !current.contains("before"))
    }

    @Test("a batch lands as the same lines single deliveries write, in order, in one write")
    func batch() async throws {
        let directory = TemporaryDirectory()
        let single = directory.file("single.jsonl")
        let batched = directory.file("batched.jsonl")
        let events = (0..<40).map { mailEvent(subject: "number \($0)") }
        let one = try FileSink(name: "single", configuration: .init(path: single), context: context)
        for (index, event) in events.enumerated() { try await one.deliver(event, attempt: DeliveryAttempt(number: 1, deliveryID: Int64(index))) }
        let many = try FileSink(name: "batched", configuration: .init(path: batched, fsync: true), context: context)
        #expect(many.batchLimit > 1)
        try await many.deliver(batch: events.enumerated().map { SinkDelivery(event: $1, attempt: DeliveryAttempt(number: 1, deliveryID: Int64($0))) })
        let written = try String(contentsOfFile: batched, encoding: .utf8)
        #expect(written == (try String(contentsOfFile: single, encoding: .utf8)))
        #expect(written.split(separator: "\n").map { try? BridgeEvent(json: JSONParser.parse(String($0))) } == events)
    }

    @Test("a path that cannot be written is a retryable failure; a batch fails whole (none of it counts as delivered)", arguments: [1, 2])
    func unwritable(events: Int) async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("audit.jsonl")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let sink = try FileSink(name: "audit", configuration: .init(path: path), context: context)
        await #expect {
            if events == 1 {
                try await sink.deliver(mailEvent(), attempt: DeliveryAttempt(number: 1, deliveryID: 1))
            } else {
                try await sink.deliver(batch: (0..<events).map { _ in SinkDelivery(event: mailEvent(), attempt: DeliveryAttempt(number: 1, deliveryID: 1)) })
            }
        } throws: { error in
            guard let error = error as? SinkError, case .retry = error.disposition else { return false }
            return error.message.contains(path)
        }
    }

    @Test("a missing folder is a config error at the path")
    func missingFolder() throws {
        let directory = TemporaryDirectory()
        let yaml = "sinks:\n  audit:\n    type: file\n    path: no-such-folder/audit.jsonl\n"
        let file = directory.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8))
        #expect {
            try BridgeConfiguration.load(path: file, registry: SinkRegistry([FileSink.self]), environment: [:])
        } throws: { error in
            let errors = (error as? ConfigErrors)?.errors ?? []
            return errors.count == 1 && errors[0].mark == ConfigMark(line: 4, column: 11)
                && errors[0].message.contains("no-such-folder") && errors[0].message.contains("does not exist")
        }
    }
}

@Suite("stdout sink")
struct StdoutSinkTests {
    /// Delivers to a file descriptor and returns what was written. A file opened close-on-exec,
    /// not a pipe: a process another test starts meanwhile (a parallel run starts many) would
    /// inherit a pipe's write end, and reading to its end would wait for that process to exit.
    func written(format: StdoutSink.Format, events: [BridgeEvent]) async throws -> String {
        let directory = TemporaryDirectory(prefix: "graph-bridge-stdout")
        let fd = open(directory.file("out"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        let sink = StdoutSink(name: "console", configuration: .init(format: format), fileDescriptor: fd)
        for event in events { try await sink.deliver(event, attempt: DeliveryAttempt(number: 1, deliveryID: 1)) }
        close(fd)
        return try String(contentsOfFile: directory.file("out"), encoding: .utf8)
    }

    @Test("text: one readable line per event, control characters flattened")
    func text() async throws {
        let output = try await written(format: .text, events: [mailEvent(subject: "Hello\nworld")])
        #expect(output == "2026-11-30T00:53:20.123Z inbox created Users/1/Messages/2 \"Hello world\" from Bob <bob@contoso.com>\n")
    }

    @Test("a batch is the lines of its events in order, as single deliveries write them")
    func batch() async throws {
        let events = [mailEvent(subject: "first"), mailEvent(subject: "second\nline"), mailEvent(subject: "third")]
        let directory = TemporaryDirectory(prefix: "graph-bridge-stdout")
        let fd = open(directory.file("out"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        let sink = StdoutSink(name: "console", configuration: .init(format: .text), fileDescriptor: fd)
        try await sink.deliver(batch: events.map { SinkDelivery(event: $0, attempt: DeliveryAttempt(number: 1, deliveryID: 1)) })
        close(fd)
        let batched = try String(contentsOfFile: directory.file("out"), encoding: .utf8)
        #expect(batched == (try await written(format: .text, events: events)))
        #expect(batched.split(separator: "\n").count == 3)
    }

    @Test("json: the event exactly as the file sink writes it")
    func json() async throws {
        let event = mailEvent()
        let output = try await written(format: .json, events: [event])
        #expect(output == String(decoding: event.encoded(), as: UTF8.self) + "\n")
    }

    @Test("lifecycle events say which lifecycle event")
    func lifecycle() {
        let event = BridgeEvent(id: "x", receivedAt: Date(timeIntervalSince1970: 0), subscription: SubscriptionReference(name: "inbox", id: "s", resource: nil), lifecycleEvent: "missed")
        #expect(StdoutSink.text(for: event) == "1970-01-01T00:00:00.000Z inbox lifecycle:missed")
    }
}
