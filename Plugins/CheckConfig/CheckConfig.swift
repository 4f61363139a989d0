import Foundation
import PackagePlugin

/// `swift package check-config [FILE...]`: builds graph-bridge and runs `graph-bridge check` on
/// bridge.example.yaml and on every file given, so a config change is validated like code.
@main
struct CheckConfig: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let build = try packageManager.build(.product("graph-bridge"), parameters: .init(configuration: .debug, logging: .concise))
        guard build.succeeded, let tool = build.builtArtifacts.first(where: { $0.kind == .executable }) else {
            Diagnostics.error("building graph-bridge failed:\n\(build.logText)")
            return
        }
        let root = context.package.directoryURL
        let files = [root.appendingPathComponent("bridge.example.yaml").path] + arguments
        var failed = false
        for file in files {
            let process = Process()
            process.executableURL = tool.url
            process.arguments = ["check", "--config", file]
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 { failed = true }
        }
        if failed {
            Diagnostics.error("configuration check failed")
        }
    }
}
