// libFuzzer entry point for bridge.yaml: every input is parsed as a config file and, when it is
// YAML, loaded as a whole configuration (every section decoded, every reference checked) with no
// sink types and an empty environment. Errors are expected (typed throws: only ConfigError and
// ConfigErrors can come out); a trap, a hang or a raw Swift error leaking into a message is a bug.
import BridgeConfig
import BridgeCore
import BridgeSettings
import CLibFuzzer
import Foundation

/// Where an input that is not UTF-8 is written so it reaches libyaml through `ConfigDocument.load(path:)`,
/// which takes bytes (UTF-16 with a byte-order mark, or a reader error at the bad byte).
private let scratchPath = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-fuzz-config-\(getpid()).yaml")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let document: ConfigDocument
    do {
        if let text = String(validating: bytes, as: UTF8.self) {
            document = try ConfigDocument.parse(text, file: "bridge.yaml", directory: "/etc/graph-bridge")
        } else {
            do {
                try Data(bytes).write(to: scratchPath)
            } catch {
                fatalError("cannot write \(scratchPath.path) (\(error)); set TMPDIR to a writable folder")
            }
            defer { try? FileManager.default.removeItem(at: scratchPath) }
            document = try ConfigDocument.load(path: scratchPath.path)
        }
    } catch {
        check([error], input: bytes)
        return 0
    }
    do {
        _ = try BridgeConfiguration.load(document: document, registry: SinkRegistry([]), environment: [:])
    } catch {
        require(!error.errors.isEmpty, "ConfigErrors thrown with no error in it")
        check(error.errors, input: bytes)
    }
    return 0
}

/// Messages are for people: a raw decoding error or an internal fallback showing through is a bug
/// (unless the input itself spells it, as a key or value a message quotes).
private func check(_ errors: [ConfigError], input: UnsafeBufferPointer<UInt8>) {
    let text = String(decoding: input, as: UTF8.self)
    for error in errors {
        let message = error.message
        require(!message.isEmpty, "a ConfigError with an empty message")
        for leak in ["DecodingError", "Swift.", "internal:"] where !text.contains(leak) {
            require(!message.contains(leak), "a raw error leaked into a config message: \(error)")
        }
        _ = error.description
    }
}

/// A failed property: `fatalError` keeps its message in release builds (a `precondition` would not),
/// and libFuzzer then writes the input that broke it.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// The process entry point. SwiftPM links every executable with `main` defined as `<module>_main`
/// (so that tests could link it), which `-parse-as-library` leaves undefined; libFuzzer's driver
/// takes over from here exactly as its own `main` would.
@_cdecl("fuzz_config_main")
public func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzConfig(data, size) }
}
