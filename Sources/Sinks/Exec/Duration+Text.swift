import Foundation

extension Duration {
    var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// `30s`, `1.5s`, `250ms`: how durations read in log lines and errors.
enum DurationText {
    static func text(_ duration: Duration) -> String {
        let milliseconds = Int64(duration.timeInterval * 1000)
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return String(format: "%.1fs", Double(milliseconds) / 1000)
    }
}
