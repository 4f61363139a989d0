// The webhook sink's ceiling: CurlClient alone, `concurrency` requests in flight, each POSTing a
// body the size of an event to a URL for `seconds`. `scripts/bench` runs it against the same
// receiver as the drain, so the drain's webhook deliveries can be compared with what the
// transport alone does on the same machine in the same minutes. Prints one JSON line: requests
// per second and this process's CPU microseconds per request. `host-connections` caps the
// connections to the receiver (CurlClient's `maxHostConnections`): below `concurrency`, the rest
// of the requests wait in libcurl's queue for a connection to come free.
//
//     bench-curl URL [concurrency=4] [seconds=3] [body-bytes=300] [host-connections=8]
import CurlKit
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: bench-curl URL [concurrency] [seconds] [body-bytes] [host-connections]\n".utf8))
    exit(2)
}
let url = arguments[1]
let concurrency = arguments.count > 2 ? max(1, Int(arguments[2]) ?? 4) : 4
let seconds = arguments.count > 3 ? max(0.5, Double(arguments[3]) ?? 3) : 3
let body = Array(repeating: UInt8(ascii: "x"), count: arguments.count > 4 ? max(0, Int(arguments[4]) ?? 300) : 300)

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

let hostConnections = arguments.count > 5 ? max(1, Int(arguments[5]) ?? 8) : 8

let client = CurlClient(configuration: .init(maxHostConnections: hostConnections))
let request = HTTPRequest(method: "POST", url: url, headers: [(name: "Content-Type", value: "application/json")], body: body)
// Warm up: connections open, the transfer thread started.
for _ in 0..<concurrency { _ = try await client.execute(request) }

let clock = ContinuousClock()
let deadline = clock.now + .seconds(seconds)
let cpuBefore = cpuSeconds()
let started = clock.now
let (requests, failures) = await withTaskGroup(of: (Int, Int).self) { group in
    for _ in 0..<concurrency {
        group.addTask {
            var (done, failed) = (0, 0)
            while clock.now < deadline {
                do {
                    let response = try await client.execute(request)
                    if (200..<300).contains(response.status) { done += 1 } else { failed += 1 }
                } catch {
                    failed += 1
                }
            }
            return (done, failed)
        }
    }
    var total = (0, 0)
    for await (done, failed) in group { total = (total.0 + done, total.1 + failed) }
    return total
}
let elapsed = clock.now - started
let cpu = cpuSeconds() - cpuBefore
await client.shutdown()
let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print("{\"requests_per_s\": \(Int(Double(requests) / wall)), \"cpu_us_per_request\": \(String(format: "%.1f", cpu / Double(max(1, requests)) * 1e6)), \"failures\": \(failures), \"concurrency\": \(concurrency), \"host_connections\": \(hostConnections)}")
