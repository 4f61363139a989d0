import BridgeCore
import BridgeSettings
import SinkAPI
import ExecSink
import Foundation
import Logging
import Testing
import TestSupport

@Suite("exec sink: configuration")
struct ConfigurationTests {
    /// Loads a bridge.yaml whose only section is `sinks:` with one exec sink `custom` built from `lines`.
    func load(_ lines: [String], in directory: TemporaryDirectory, environment: [String: String] = [:]) throws -> BridgeConfiguration {
        let yaml = "sinks:\n  custom:\n    type: exec\n" + lines.map { "    \($0)\n" }.joined()
        let file = directory.file("bridge.yaml")
        _ = FileManager.default.createFile(atPath: file, contents: Data(yaml.utf8))
        return try BridgeConfiguration.load(path: file, registry: SinkRegistry([ExecSink.self]), environment: environment)
    }

    /// The sink block decoded on its own (same rules), to look at the values.
    func decode(_ lines: [String], in directory: TemporaryDirectory) throws -> ExecSink.Configuration {
        let text = "type: exec\n" + lines.map { "\($0)\n" }.joined()
        let document = try ConfigDocument.parse(text, file: directory.file("bridge.yaml"), directory: directory.path)
        return try ConfigDecoder(document: document, environment: [:]).decode(ExecSink.Configuration.self)
    }

    /// The single error `load` reports.
    func error(_ lines: [String], in directory: TemporaryDirectory) -> ConfigError? {
        do {
            _ = try load(lines, in: directory)
            Issue.record("expected a config error")
            return nil
        } catch let error as ConfigErrors {
            let errors = error.errors
            #expect(errors.count == 1, "\(errors)")
            return errors.first
        } catch {
            Issue.record("expected ConfigErrors, got \(error)")
            return nil
        }
    }

    @Test("a relative program is resolved against the config's folder, which is also the default working directory")
    func relative() throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("plugins"), withIntermediateDirectories: true)
        directory.script("plugins/my-sink", "#!/bin/sh\n")
        let configuration = try decode(["command: [./plugins/my-sink, --flag, 8080]"], in: directory)
        #expect(configuration.executable == directory.file("plugins/my-sink"))
        #expect(configuration.arguments == ["--flag", "8080"])
        #expect(configuration.workingDirectory == directory.path)
        #expect(configuration.timeout == .seconds(30))
        #expect(configuration.environment == [:])
        // Through the whole loader: the core's keys are allowed beside the plugin's, concurrency defaults to 8.
        let loaded = try load(["command: [./plugins/my-sink]", "retry: { maxAge: 1h }"], in: directory)
        #expect(loaded.sinks.map(\.concurrency) == [8])
        #expect(try loaded.sinks[0].factory.makeSink(context: SinkContext(logger: .init(label: "x"))) is ExecSink)
    }

    @Test("a bare program name is looked up on PATH; the other keys are read")
    func onPath() throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("work"), withIntermediateDirectories: true)
        let configuration = try decode(
            [
                "command: [sh, -c, 'exit 0']",
                "timeout: 1m30s",
                "environment: { API_TOKEN: abc, MODE: test }",
                "workingDirectory: work",
            ], in: directory)
        #expect(configuration.executable.hasPrefix("/") && configuration.executable.hasSuffix("/sh"))
        #expect(configuration.arguments == ["-c", "exit 0"])
        #expect(configuration.timeout == .seconds(90))
        #expect(configuration.environment == ["API_TOKEN": "abc", "MODE": "test"])
        #expect(configuration.workingDirectory == directory.file("work"))
        #expect(!configuration.inheritEnvironment)
    }

    @Test("the child's environment: PATH, HOME, LANG and TZ when set, then environment:; inheritEnvironment: true takes all")
    func childEnvironment() throws {
        let directory = TemporaryDirectory()
        let parent = ["PATH": "/bin", "HOME": "/home/b", "TZ": "UTC", "GRAPH_CLIENT_SECRET": "s", "MODE": "bridge"]
        let minimal = try decode(["command: [sh]", "environment: { MODE: plugin }"], in: directory)
        #expect(minimal.childEnvironment(parent: parent) == ["PATH": "/bin", "HOME": "/home/b", "TZ": "UTC", "MODE": "plugin"])
        let inherited = try decode(["command: [sh]", "environment: { MODE: plugin }", "inheritEnvironment: true"], in: directory)
        #expect(inherited.inheritEnvironment)
        #expect(
            inherited.childEnvironment(parent: parent)
                == ["PATH": "/bin", "HOME": "/home/b", "TZ": "UTC", "GRAPH_CLIENT_SECRET": "s", "MODE": "plugin"])
        let problem = try #require(error(["command: [sh]", "inheritEnvironment: yes"], in: directory))
        #expect(problem.mark?.line == 5)
    }

    @Test("a missing program is an error at its place in the file")
    func missing() throws {
        let directory = TemporaryDirectory()
        let problem = try #require(error(["command: [./plugins/nope.py, --flag]"], in: directory))
        #expect(problem.mark == ConfigMark(line: 4, column: 15))
        #expect(problem.message.contains("./plugins/nope.py") && problem.message.contains("does not exist"))
        #expect(problem.description.hasPrefix(directory.file("bridge.yaml") + ":4:15: "))
    }

    @Test("a program that is not executable, a folder, or not on PATH is an error")
    func notExecutable() throws {
        let directory = TemporaryDirectory()
        _ = FileManager.default.createFile(
            atPath: directory.file("plain.py"), contents: Data("print()\n".utf8), attributes: [.posixPermissions: 0o644])
        #expect(error(["command: [./plain.py]"], in: directory)?.message.contains("is not executable") == true)
        #expect(error(["command: [/tmp]"], in: directory)?.message.contains("is a folder") == true)
        let unknown = error(["command: [no-such-program-anywhere]"], in: directory)
        #expect(unknown?.message.contains("not an executable program on PATH") == true)
        #expect(unknown?.mark == ConfigMark(line: 4, column: 15))
    }

    @Test("command must be a non-empty list")
    func shape() throws {
        let directory = TemporaryDirectory()
        let text = error(["command: ./plugin.sh --flag"], in: directory)
        #expect(text?.message.contains("command must be a list") == true)
        #expect(text?.mark == ConfigMark(line: 4, column: 14))
        #expect(error(["command: []"], in: directory)?.message.contains("command is empty") == true)
        #expect(error(["timeout: 5s"], in: directory)?.message.contains("command") == true)
    }

    @Test("a zero timeout, a missing working directory and an unknown key are errors")
    func otherKeys() throws {
        let directory = TemporaryDirectory()
        #expect(error(["command: [sh]", "timeout: 0s"], in: directory)?.message.contains("timeout must be longer than 0s") == true)
        let folder = error(["command: [sh]", "workingDirectory: nowhere"], in: directory)
        #expect(folder?.message.contains("does not exist") == true && folder?.mark?.line == 5)
        #expect(error(["command: [sh]", "timout: 5s"], in: directory)?.message.contains("timeout") == true)
    }
}
