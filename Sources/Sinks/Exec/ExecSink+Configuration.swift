import SinkAPI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension ExecSink {
    /// The keys of a `type: exec` block (see ``ExecSink``).
    public struct Configuration: Decodable, Sendable {
        /// The absolute path of the program (`command[0]`, resolved).
        public var executable: String
        /// `command[1...]`.
        public var arguments: [String]
        public var timeout: Duration
        /// The child's variables on top of the minimal set (or of the bridge's whole environment
        /// with ``inheritEnvironment``); these win.
        public var environment: [String: String]
        /// `true`: the child starts from the bridge's whole environment (secrets included), as
        /// before 11.6; `false` (the default): only ``minimalVariables``.
        public var inheritEnvironment: Bool
        /// Absolute.
        public var workingDirectory: String

        /// `command[0]` is resolved as in the config file, against the current directory: a bare
        /// name on `PATH`, a relative path against `workingDirectory` or the current directory.
        /// Nothing is checked; a program that cannot start is retried with backoff by `run()`.
        public init(
            command: [String],
            timeout: Duration = .seconds(30),
            environment: [String: String] = [:],
            inheritEnvironment: Bool = false,
            workingDirectory: String? = nil
        ) {
            precondition(!command.isEmpty, "an exec sink's command names at least the program")
            let current = FileManager.default.currentDirectoryPath
            let folder = workingDirectory.map { Executable.absolute($0, base: current) } ?? current
            let program = command[0]
            if program.contains("/") {
                self.executable = Executable.absolute(program, base: folder)
            } else {
                self.executable = Executable.search(program, path: Executable.searchPath) ?? program
            }
            self.arguments = Array(command.dropFirst())
            self.timeout = timeout
            self.environment = environment
            self.inheritEnvironment = inheritEnvironment
            self.workingDirectory = folder
        }

        enum CodingKeys: String, CodingKey {
            case type, command, timeout, environment, inheritEnvironment, workingDirectory
        }

        /// The variables a plugin gets from the bridge's environment unless `inheritEnvironment: true`.
        public static let minimalVariables = ["PATH", "HOME", "LANG", "TZ"]

        /// The child's environment: ``minimalVariables`` that `parent` sets (or all of `parent`
        /// with ``inheritEnvironment``), then ``environment`` over them. The bridge's own secrets
        /// (`GRAPH_CLIENT_SECRET`, tokens in `${VAR}`s) reach a plugin only through `environment:`.
        public func childEnvironment(parent: [String: String]) -> [String: String] {
            var result: [String: String]
            if inheritEnvironment {
                result = parent
            } else {
                result = [:]
                for name in Self.minimalVariables { result[name] = parent[name] }
            }
            result.merge(environment) { _, configured in configured }
            return result
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let command = try container.decode(Command.self, forKey: .command)
            executable = command.executable
            arguments = command.arguments
            timeout = try container.decodeIfPresent(Timeout.self, forKey: .timeout)?.duration ?? .seconds(30)
            environment = try container.decodeIfPresent(Environment.self, forKey: .environment)?.variables ?? [:]
            inheritEnvironment = try container.decodeIfPresent(Bool.self, forKey: .inheritEnvironment) ?? false
            if let folder = try container.decodeIfPresent(ExistingFolder.self, forKey: .workingDirectory) {
                workingDirectory = folder.path
            } else {
                workingDirectory =
                    try container.decodeIfPresent(ConfigFolder.self, forKey: .type)?.path
                    ?? FileManager.default.currentDirectoryPath
            }
        }
    }

    /// `command:`: a non-empty list; its first item a program that exists and can be run.
    struct Command: Decodable {
        var executable: String
        var arguments: [String]

        init(from decoder: any Decoder) throws {
            if let node = decoder.configNode {
                guard case .sequence(let items, _) = node else {
                    throw decoder.configError(
                        "command must be a list: the program, then its arguments, like [./plugins/my-sink, --flag]")
                }
                guard !items.isEmpty else {
                    throw decoder.configError("command is empty: give at least the program to run, like [./plugins/my-sink]")
                }
            }
            var list = try decoder.unkeyedContainer()
            executable = try list.decode(Executable.self).path
            var arguments: [String] = []
            while !list.isAtEnd { arguments.append(try list.decode(String.self)) }
            self.arguments = arguments
        }
    }

    /// `command[0]`: resolved to an absolute path and checked, so `check` reports it at its line.
    struct Executable: Decodable {
        var path: String

        static var searchPath: String { ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" }

        init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard !text.isEmpty else { throw decoder.configError("the program to run (command[0]) is empty") }
            if text.contains("/") {
                path = try ConfigPath(from: decoder).path
                if let problem = Self.problem(with: path) {
                    throw decoder.configError("exec plugin \(text) (\(path)) \(problem)")
                }
            } else {
                guard let found = Self.search(text, path: Self.searchPath) else {
                    throw decoder.configError(
                        "exec plugin \(text) is not an executable program on PATH (write ./\(text) for a file next to the config)")
                }
                path = found
            }
        }

        /// Why `path` cannot be run, or nil when it can.
        static func problem(with path: String) -> String? {
            var info = stat()
            guard stat(path, &info) == 0 else { return "does not exist" }
            if (info.st_mode & S_IFMT) == S_IFDIR { return "is a folder, not a program" }
            guard access(path, X_OK) == 0 else {
                return "is not executable (chmod +x it, or name its interpreter first: [python3, plugin.py])"
            }
            return nil
        }

        /// The first executable file named `name` in the `PATH`-style list `path`.
        static func search(_ name: String, path: String) -> String? {
            for folder in path.split(separator: ":") where folder.hasPrefix("/") {
                let candidate = folder.hasSuffix("/") ? "\(folder)\(name)" : "\(folder)/\(name)"
                if problem(with: candidate) == nil { return candidate }
            }
            return nil
        }

        static func absolute(_ path: String, base: String) -> String {
            let joined = path.hasPrefix("/") ? path : base + "/" + path
            return URL(fileURLWithPath: joined).standardizedFileURL.path
        }
    }

    /// `timeout:`: a duration above zero.
    struct Timeout: Decodable {
        var duration: Duration

        init(from decoder: any Decoder) throws {
            duration = try ConfigDuration(from: decoder).duration
            guard duration > .zero else { throw decoder.configError("timeout must be longer than 0s") }
        }
    }

    /// `environment:`: a map of names to values that `execve` can take.
    struct Environment: Decodable {
        var variables: [String: String]

        init(from decoder: any Decoder) throws {
            variables = try decoder.singleValueContainer().decode([String: String].self)
            for (name, value) in variables {
                if name.isEmpty || name.contains("=") || name.contains("\0") {
                    throw decoder.configError("environment variable name \"\(name)\" is not valid (no '=', not empty)")
                }
                if value.contains("\0") {
                    throw decoder.configError("environment variable \(name) holds a NUL character")
                }
            }
        }
    }

    /// `workingDirectory:`: a folder that exists.
    struct ExistingFolder: Decodable {
        var path: String

        init(from decoder: any Decoder) throws {
            path = try ConfigPath(from: decoder).path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw decoder.configError("workingDirectory \(path) does not exist or is not a folder")
            }
        }
    }

    /// The config file's folder. BridgeConfig resolves relative paths against it but does not
    /// name it to plugins; resolving the block's own `type` value (`exec`, no slash) as a path
    /// and taking its folder gives exactly that folder.
    struct ConfigFolder: Decodable {
        var path: String

        init(from decoder: any Decoder) throws {
            path = (try ConfigPath(from: decoder).path as NSString).deletingLastPathComponent
        }
    }
}
