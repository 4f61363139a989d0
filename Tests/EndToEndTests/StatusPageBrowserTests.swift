import CurlKit
import Foundation
import Synchronization
import TestSupport
import Testing

/// The status page of a real `graph-bridge run`, in a real headless Chromium driven over its
/// DevTools protocol (`Tests/Support/cdp_browser.py`): signed in with the admin token's form, it
/// shows a notification's row and each sink's outcome as they happen, without a reload.
@Suite("status page in a browser", .serialized, .machine(.processes))
struct StatusPageBrowserTests {
    @Test(
        "sign in, post notifications: rows appear without a reload, the failing sink's dead letters rise, the chart counts; SIGTERM still stops in time",
        .enabled(
            if: BrowserSession.chromium != nil,
            "chromium is not installed (scripts/install-deps installs it): the status page was not tried in a browser")
    )
    func livePage() async throws {
        let directory = TemporaryDirectory()
        let token = "page-token-8d7c6b5a"
        let refusingHook = try RefusingPort()
        defer { refusingHook.close() }
        let config = EndToEndTests.config()
            .replacingOccurrences(of: "admin: { listen: 127.0.0.1:0 }", with: "admin: { listen: 127.0.0.1:0, token: \"${ADMIN_TOKEN}\" }")
            .replacingOccurrences(
                of: "  audit: { type: file, path: audit.jsonl }",
                with: """
                      audit: { type: file, path: audit.jsonl }
                      broken:
                        type: webhook
                        url: http://127.0.0.1:\(refusingHook.port)/hook
                        retry: { initialBackoff: 100ms, maxBackoff: 200ms, maxAge: 500ms }
                    """
            )
            .replacingOccurrences(of: "  - to: [audit]", with: "  - to: [audit, broken]")
        let bridge = try ListenerEndToEndTests.start(directory, config: config, environment: ["ADMIN_TOKEN": token])
        let port = try await bridge.port()
        let admin = "http://127.0.0.1:\(try await bridge.adminPort())"
        let browser = try await BrowserSession(profile: directory.file("chromium-profile"))
        let client = CurlClient()

        // Without a session the page is the sign-in form; the token goes in once, by POST.
        try await browser.navigate(admin + "/")
        _ = try await browser.wait("document.getElementById('token') !== null")
        _ = try await browser.evaluate(
            "document.getElementById('token').value = \(Self.literal(token)); document.querySelector('form').submit()", navigates: true)
        _ = try await browser.wait("document.getElementById('state').textContent === 'live'")
        _ = try await browser.wait("document.querySelector('#sinks tr[data-sink=\"broken\"] td.dead')?.textContent === '0'")
        // Marks this page: a reload would lose it.
        _ = try await browser.evaluate("window.notReloaded = true")

        #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("P", 1)) == 202)
        let row = "[...document.querySelectorAll('#events tbody tr')].find(r => r.textContent.includes('Users/1/Messages/P-1'))"
        _ = try await browser.wait("\(row) !== undefined")
        _ = try await browser.wait("\(row).querySelector('span[data-sink=\"audit\"]').dataset.outcome === 'success'")
        _ = try await browser.wait("\(row).querySelector('span[data-sink=\"broken\"]').dataset.outcome === 'dead_letter'")
        _ = try await browser.wait("Number(document.querySelector('#sinks tr[data-sink=\"broken\"] td.dead').textContent) >= 1")
        #expect(try await browser.evaluate("window.notReloaded === true") as? Bool == true, "the page was not reloaded")
        #expect(try await browser.evaluate("document.querySelector('#sinks tr[data-sink=\"broken\"]').textContent") as? String ?? "" != "")
        let lastError = try await browser.evaluate("document.querySelector('#sinks tr[data-sink=\"broken\"]').children[4].textContent") as? String
        #expect(lastError?.isEmpty == false, "the failing sink's last error is shown")

        // A few more, so the chart and the table have something to show.
        for n in 2...6 {
            #expect(try await EndToEndTests.post(client, port: port, body: EndToEndTests.notification("P", n)) == 202)
        }
        _ = try await browser.wait("document.querySelectorAll('#events tbody tr').length >= 6")
        _ = try await browser.wait("Number(document.querySelector('g[data-series=\"notifications\"]').dataset.total) >= 6")
        _ = try await browser.wait("Number(document.querySelector('#sinks tr[data-sink=\"broken\"] td.dead').textContent) >= 6")
        _ = try await browser.wait("document.querySelectorAll('#events span[data-outcome=\"success\"]').length >= 6")
        #expect(try await browser.evaluate("document.querySelector('#subscriptions').textContent.includes('audit-feed')") as? Bool == true)

        let screenshot = directory.file("status-page.png")
        try await browser.screenshot(to: screenshot)
        #expect((try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0 > 10_000)
        if let keep = ProcessInfo.processInfo.environment["STATUS_PAGE_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: screenshot, toPath: keep)
        }
        let errors = try await browser.errors()
        #expect(errors.isEmpty, "JavaScript errors on the page: \(errors)")

        // The open stream does not hold up a stop; the page notices the bridge went.
        await client.shutdown()
        let stopped = await bridge.terminate(within: .seconds(10))
        #expect(stopped.inTime && stopped.code == 0, "\(bridge.log)")
        _ = try await browser.wait("document.getElementById('state').textContent === 'reconnecting…'")
        await browser.quit()
    }

    /// `text` as a JavaScript string literal.
    static func literal(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text])
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }
}

/// `Tests/Support/cdp_browser.py` running headless Chromium: one JSON command per line in, one answer out.
final class BrowserSession: Sendable {
    /// The Chromium to use: `CHROMIUM`, else Debian's `chromium` (or `chromium-browser`) on the usual paths.
    static let chromium: String? = {
        let candidates = [ProcessInfo.processInfo.environment["CHROMIUM"], "/usr/bin/chromium", "/usr/bin/chromium-browser"].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    static let helper = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/cdp_browser.py").path

    private let process = ChildProcess()
    private let input = Pipe()
    private let answers = LineBuffer()
    private let errorOutput = LineBuffer()
    private let nextID = Mutex(0)

    init(profile: String) async throws {
        guard let chromium = Self.chromium else { throw ProcessFailure("no chromium") }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.helper, chromium, profile]
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        output.fileHandleForReading.readToEnd(onOwnThread: answers.consume)
        errors.fileHandleForReading.readToEnd(onOwnThread: errorOutput.consume)
        let ready = try await answer(0)
        guard ready["value"] as? String == "ready" else { throw ProcessFailure("the browser did not start: \(ready) \(errorOutput.text)") }
    }

    private func answer(_ id: Int) async throws -> [String: Any] {
        guard let line = await answers.waitForLine(containing: "{\"id\": \(id), ") else {
            throw ProcessFailure("the browser helper exited: \(errorOutput.text)")
        }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        if object["ok"] as? Bool != true { throw ProcessFailure("browser: \(object["error"] ?? object)") }
        return object
    }

    @discardableResult
    private func send(_ command: [String: Any]) async throws -> Any? {
        let id = nextID.withLock { id in
            id += 1
            return id
        }
        var command = command
        command["id"] = id
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: command) + Data("\n".utf8))
        return try await answer(id)["value"]
    }

    func navigate(_ url: String) async throws { try await send(["op": "navigate", "url": url]) }

    /// The expression's value; `navigates`: returns after the page it leads to has loaded.
    func evaluate(_ expression: String, navigates: Bool = false) async throws -> Any? {
        try await send(["op": "eval", "expression": expression, "navigates": navigates])
    }

    /// Resolves once `expression` is truthy (checked at every change of the page), or throws after `timeout` seconds.
    func wait(_ expression: String, timeout: Int = 20) async throws -> Any? {
        try await send(["op": "wait", "expression": expression, "timeout": timeout])
    }

    func screenshot(to path: String) async throws { try await send(["op": "screenshot", "path": path]) }

    func errors() async throws -> [String] { try await send(["op": "errors"]) as? [String] ?? [] }

    func quit() async {
        _ = try? await send(["op": "quit"])
        await onOwnThread { [process] in process.waitUntilExit() }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
