import BridgeCore
import BridgeSettings
import SinkAPI
import BridgeTemplates
import CurlKit
import Foundation
import SMTPSink
import TestSupport
import Testing

/// `bridge.yaml` errors in an smtp sink block, each at its exact line and column.
@Suite("smtp sink configuration")
struct SMTPConfigurationTests {
    /// Loads `sinks: { mail: { type: smtp, <lines> } }`; the lines start on line 4, indented 4.
    static func load(
        _ lines: [String], folder: TemporaryDirectory, environment: [String: String] = [:]
    ) throws(ConfigErrors) -> BridgeConfiguration {
        let yaml = "sinks:\n  mail:\n    type: smtp\n" + lines.map { "    \($0)\n" }.joined()
        let file = folder.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8))
        return try BridgeConfiguration.load(
            path: file, registry: SinkRegistry([SMTPSink.self]),
            environment: environment.merging(["HOME": folder.path]) { $1 })
    }

    static let url = "url: smtp://smtp.example.com:587"
    static let from = "from: bridge@example.com"
    static let to = "to: [ops@example.com]"

    @Test(
        "each mistake is one error at its key or value",
        arguments: [
            (["url: http://smtp.example.com", from, to], 4, 10, "smtp:// (STARTTLS"),
            (["url: smtp://bridge:secret@smtp.example.com", from, to], 4, 10, "username: and password:"),
            (["url: smtp://smtp.example.com:99999", from, to], 4, 10, "port"),
            ([url, "tls: implicit", from, to], 5, 10, "tls: implicit needs an smtps:// URL"),
            (["url: smtps://smtp.example.com", "tls: starttls", from, to], 5, 10, "smtps:// URL is implicit TLS"),
            ([url, "tls: maybe", from, to], 5, 10, "expected one of starttls, implicit, none"),
            ([url, "from: Graph Bridge", to], 5, 11, "name@example.com"),
            ([url, from, "to: [ops@example.com, \"Ops, Team <x@y.z>\"]"], 6, 27, "double quotes"),
            ([url, from, "to: \"a@example.com, b@example.com\""], 6, 9, "several recipients go in a list"),
            ([url, from, "to: []"], 6, 9, "at least one recipient"),
            ([url, from], 3, 5, "missing required key 'to'"),
            ([url, from, to, "cc: [not-an-address]"], 7, 10, "name@example.com"),
            ([url, from, to, "username: bridge"], 7, 15, "needs a password"),
            ([url, from, to, "password: hunter2"], 7, 15, "needs a username"),
            ([url, from, to, "caFile: missing-ca.pem"], 7, 13, "not a readable file"),
            (["url: smtp://relay.local:25", "tls: none", "insecureSkipVerify: true", from, to], 6, 25, "no effect with tls: none"),
            ([url, from, to, "subject: \"{{#data.subject}}never closed\""], 7, 14, "invalid template"),
            ([url, from, to, "html: \"<p>{{dat.subject}}</p>\""], 7, 11, "invalid template"),
            ([url, from, to, "timeout: 0s"], 7, 14, "at least 1s"),
            ([url, from, to, "tsl: starttls"], 7, 5, "tls"),
        ] as [([String], Int, Int, String)])
    func positionedErrors(lines: [String], line: Int, column: Int, words: String) throws {
        let folder = TemporaryDirectory(prefix: "smtp-config")
        #expect {
            _ = try Self.load(lines, folder: folder)
        } throws: { error in
            let errors = (error as? ConfigErrors)?.errors ?? []
            let matches =
                errors.count == 1 && errors[0].mark == ConfigMark(line: line, column: column) && errors[0].message.contains(words)
            if !matches { Issue.record("got \(errors.map(\.description)); wanted \(line):\(column) with \(words)") }
            return matches
        }
    }

    @Test("a password never appears in an error, even one about its own line")
    func passwordNotEchoed() throws {
        let folder = TemporaryDirectory(prefix: "smtp-config")
        #expect {
            _ = try Self.load(
                [Self.url, Self.from, Self.to, "password: ${SMTP_PASSWORD}"], folder: folder, environment: ["SMTP_PASSWORD": "hunter2"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("needs a username") && !text.contains("hunter2")
        }
    }

    @Test("defaults: smtp:// is STARTTLS, smtps:// implicit; caFile is resolved against the config's folder")
    func defaults() throws {
        let folder = TemporaryDirectory(prefix: "smtp-config")
        _ = FileManager.default.createFile(atPath: folder.file("ca.pem"), contents: Data("x".utf8))
        let starttls = try Self.load([Self.url, Self.from, Self.to, "caFile: ca.pem", "username: u", "password: p"], folder: folder)
        #expect(starttls.sinks.count == 1 && starttls.sinks[0].type == "smtp")
        let implicit = try Self.load(["url: smtps://smtp.example.com", "bcc: archive@example.com", Self.from, Self.to], folder: folder)
        #expect(implicit.sinks.count == 1)

        let document = try ConfigDocument.parse(
            "url: smtps://smtp.example.com\nfrom: \"Graph Bridge <b@example.com>\"\nto: o@example.com\ncaFile: ca.pem\ntimeout: 1m\n",
            file: "sink.yaml", directory: folder.path)
        let configuration = try ConfigDecoder(document: document, environment: [:]).decode(SMTPSink.Configuration.self)
        #expect(configuration.security == .implicit)
        #expect(configuration.tls.caFile == folder.file("ca.pem"))
        #expect(configuration.from == Mailbox(displayName: "Graph Bridge", address: "b@example.com"))
        #expect(configuration.to == [Mailbox(address: "o@example.com")])
        #expect(configuration.timeout == .seconds(60))
        #expect(configuration.subject.source == SMTPSink.Configuration.defaultSubject)
    }
}
