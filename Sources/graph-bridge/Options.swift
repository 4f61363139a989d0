import ArgumentParser
import BridgeApp
import BridgeConfig
import BridgeCore
import BridgeSettings
import Foundation
import Logging

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The configuration file.")
    var config: String = "bridge.yaml"

    /// Loads the file; on errors prints one `FILE:LINE:COL: message` line each on stderr and exits 1.
    func load() throws -> BridgeConfiguration {
        do {
            return try BridgeRunner.loadConfiguration(path: config)
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode(1)
        }
    }
}

extension ConfigOption {
    /// Reads only `state:` (for commands that only look into the state store): an unset variable
    /// elsewhere in the file does not stop them. Errors as `load()`.
    func loadState() throws -> StateSettings {
        do {
            return try BridgeConfiguration.loadState(path: config)
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode(1)
        }
    }
}

struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "Log line format: text or json.")
    var logFormat: String = "text"

    @Option(name: .long, help: "Lowest level logged: trace, debug, info, notice, warning, error, critical (default: info).")
    var logLevel: String?

    func validate() throws {
        guard BridgeLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json")
        }
        guard logLevel.map({ Logger.Level(configValue: $0) != nil }) ?? true else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Sets up swift-log for the process and returns the root logger.
    func bootstrap(defaultLevel: Logger.Level = .info) -> Logger {
        let format = BridgeLogHandler.Format(rawValue: logFormat) ?? .text
        let level = logLevel.flatMap { Logger.Level(configValue: $0) } ?? defaultLevel
        LoggingSystem.bootstrap { label in BridgeLogHandler(label: label, format: format, level: level) }
        return Logger(label: "graph-bridge")
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
