// The benchmark's ceiling: a bare Hummingbird handler that reads the body and answers 202, with
// no parsing and no journal. `scripts/bench` states the bridge's ingest as a ratio of this,
// measured on the same machine in the same run.
import Foundation
import Hummingbird
import Logging

let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 0
let router = Router()
router.post("notifications") { request, _ -> Response in
    var request = request
    _ = try await request.collectBody(upTo: 1 << 20)
    return Response(status: .accepted)
}
var logger = Logger(label: "bench-ceiling")
logger.logLevel = .warning
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bench-ceiling"),
    onServerRunning: { channel in
        // One write(2): the reader waits for this line, and stdout may be a pipe (block-buffered).
        let line = Array("PORT \(channel.localAddress?.port ?? port)\n".utf8)
        _ = line.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    },
    logger: logger
)
try await app.runService()
