import CurlKit
import Foundation
import TestSupport

/// One sample of a Prometheus text exposition (`name{label="value",...} value [timestamp]`).
struct MetricSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// The Prometheus text exposition format (version 0.0.4), as `/metrics` serves it: comments and
/// `# HELP`/`# TYPE` lines skipped, label values unescaped (`\\`, `\"`, `\n`), label order
/// irrelevant, `+Inf`/`-Inf`/`NaN` values, an optional timestamp after the value.
enum PrometheusText {
    /// Every sample in `text`; a line that is not one (a comment, a blank, a malformed line) is skipped.
    static func samples(_ text: String) -> [MetricSample] {
        text.split(separator: "\n").compactMap { sample(Substring($0)) }
    }

    /// The sum of the samples named `name` whose labels include every one of `labels` (others may
    /// be there too, in any order); nil when there is none. With all of a series' labels given,
    /// that series' value; with fewer, e.g. a counter summed over the labels left out.
    static func value(in text: String, _ name: String, labels: [String: String] = [:]) -> Double? {
        let matching = samples(text).filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
    }

    private static func sample(_ line: Substring) -> MetricSample? {
        var rest = line.drop { $0 == " " || $0 == "\t" }
        guard let first = rest.first, first != "#" else { return nil }
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard !name.isEmpty else { return nil }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while true {
                rest = rest.drop { $0 == " " || $0 == "," }
                if rest.first == "}" {
                    rest = rest.dropFirst()
                    break
                }
                let key = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                guard !key.isEmpty else { return nil }
                rest = rest.dropFirst(key.count).drop { $0 == " " }
                guard rest.first == "=" else { return nil }
                rest = rest.dropFirst().drop { $0 == " " }
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var closed = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if character == "\"" {
                        closed = true
                        break
                    }
                    if character == "\\", let escaped = rest.first {
                        rest = rest.dropFirst()
                        value.append(escaped == "n" ? "\n" : escaped)
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { return nil }
                labels[String(key)] = value
            }
        }
        let fields = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard (1...2).contains(fields.count), let value = number(fields[0]) else { return nil }
        return MetricSample(name: String(name), labels: labels, value: value)
    }

    private static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf", "Inf": Double.infinity
        case "-Inf": -Double.infinity
        case "NaN": Double.nan
        default: Double(text)
        }
    }
}

extension BridgeProcess {
    /// The value of `name{labels}` on the admin listener's `/metrics` now (``PrometheusText/value(in:_:labels:)``:
    /// summed over the series whose labels include `labels`); nil when there is no such series.
    /// The configuration needs `server.admin.listen`.
    func metric(_ name: String, labels: [String: String] = [:]) async throws -> Double? {
        let admin = try await adminPort()
        let client = CurlClient()
        do {
            let value = try await Self.scrape(client, admin: admin, name, labels: labels)
            await client.shutdown()
            return value
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Waits until `name{labels}` on `/metrics` is at least `atLeast` and returns whether it got
    /// there within `timeout`: what an operator's dashboard shows, where a test would otherwise
    /// wait for the wording of a log line to know that something happened.
    func waitForMetric(_ name: String, labels: [String: String] = [:], atLeast: Double = 1, timeout: Duration = .seconds(30)) async throws -> Bool {
        let admin = try await adminPort()
        let client = CurlClient()
        let reached = try? await eventually(timeout: timeout) {
            // No series yet, or no answer yet: not there yet.
            guard let value = try? await Self.scrape(client, admin: admin, name, labels: labels) else { return false }
            return value >= atLeast
        }
        await client.shutdown()
        return reached ?? false
    }

    private static func scrape(_ client: CurlClient, admin: Int, _ name: String, labels: [String: String]) async throws -> Double? {
        let response = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(admin)/metrics"))
        guard response.status == 200 else { throw ProcessFailure("/metrics answered \(response.status): \(response.bodyText)") }
        return PrometheusText.value(in: response.bodyText, name, labels: labels)
    }
}
