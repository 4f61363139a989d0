import TestSupport
import Testing

@testable import ExecSink

@Suite("exec sink: protocol pieces without I/O")
struct ProtocolTests {
    func pieces(_ chunks: [String], limit: Int, finish: Bool = false) -> [LineSplitter.Piece] {
        var splitter = LineSplitter(limit: limit)
        var out: [LineSplitter.Piece] = []
        for chunk in chunks { splitter.feed(Array(chunk.utf8)) { out.append($0) } }
        if finish { splitter.finish { out.append($0) } }
        return out
    }

    @Test("lines split across reads come out whole; CR before LF is dropped; a last line without LF counts at the end")
    func splitting() {
        #expect(pieces(["ab", "c\nde", "f\r\ng"], limit: 100) == [.line(Array("abc".utf8)), .line(Array("def".utf8))])
        #expect(pieces(["ab", "c\nde", "f\r\ng"], limit: 100, finish: true).last == .line(Array("g".utf8)))
        #expect(pieces(["\n\n"], limit: 10) == [.line([]), .line([])])
    }

    @Test("an overlong line comes out once, cut at the limit; the rest of it is dropped, never buffered")
    func overlong() {
        var splitter = LineSplitter(limit: 8)
        var out: [LineSplitter.Piece] = []
        splitter.feed(Array("0123456789".utf8)) { out.append($0) }
        #expect(out == [.truncated(Array("01234567".utf8))])
        for _ in 0..<1000 {
            splitter.feed([UInt8](repeating: 0x41, count: 4096)) { out.append($0) }
            #expect(splitter.bufferedCount <= 8)
        }
        splitter.feed(Array("tail\nnext\n".utf8)) { out.append($0) }
        #expect(out == [.truncated(Array("01234567".utf8)), .line(Array("next".utf8))])
        // A line of exactly the limit is a line; one over is truncated even when its newline is in the same chunk.
        #expect(pieces(["12345678\n"], limit: 8) == [.line(Array("12345678".utf8))])
        #expect(pieces(["123456789\nok\n"], limit: 8) == [.truncated(Array("12345678".utf8)), .line(Array("ok".utf8))])
    }

    @Test("answers: ok, retry and drop with their error; anything else is named")
    func answers() {
        func parse(_ text: String) -> PluginAnswer.Parsed { PluginAnswer.parse(Array(text.utf8)) }
        #expect(parse(#"{"id":"a","status":"ok"}"#) == .answer(.init(id: "a", status: .ok, error: nil)))
        #expect(parse(#"{"status":"retry","id":"a","error":"busy"}"#) == .answer(.init(id: "a", status: .retry, error: "busy")))
        #expect(parse(#" {"id":"a","status":"drop","error":{"code":4}} "#) == .answer(.init(id: "a", status: .drop, error: #"{"code":4}"#)))
        #expect(parse(#"{"id":"a","status":"maybe"}"#) == .answer(.init(id: "a", status: .unrecognized("maybe"), error: nil)))
        #expect(parse(#"{"id":"a"}"#) == .answer(.init(id: "a", status: .unrecognized("(none)"), error: nil)))
        #expect(parse("   ") == .blank)
        guard case .invalid = parse("hello") else { Issue.record("plain text is not an answer"); return }
        guard case .invalid = parse(#"{"status":"ok"}"#) else { Issue.record("an answer needs an id"); return }
        guard case .invalid = parse(#"["a"]"#) else { Issue.record("an answer is an object"); return }
        let long = String(repeating: "e", count: 5000)
        guard case .answer(let answer) = parse(#"{"id":"a","status":"retry","error":"\#(long)"}"#) else {
            Issue.record("long error")
            return
        }
        #expect(answer.error!.count <= PluginAnswer.maximumErrorLength + 1)
    }

    @Test("the table matches answers by id and generation, joins duplicates, and fails a dead child's lines")
    func table() {
        var table = DeliveryTable()
        #expect(table.register(1, id: "a", line: [1], runningGeneration: nil) == .waitForChild)
        #expect(table.register(2, id: "a", line: [1], runningGeneration: nil) == .joined(sent: false))
        #expect(table.register(3, id: "b", line: [2], runningGeneration: nil) == .waitForChild)
        let removedUnsent = table.removeIfUnsent(3)
        #expect(removedUnsent)
        let sent = table.childStarted(generation: 7)
        #expect(sent.map(\.id) == ["a"])
        #expect(table.register(4, id: "c", line: [3], runningGeneration: 7) == .send(generation: 7))
        #expect(table.register(5, id: "a", line: [1], runningGeneration: 7) == .joined(sent: true))
        let removedSent = table.removeIfUnsent(4)
        #expect(!removedSent)
        #expect(table.answer(id: "a", generation: 6) == nil)  // not from the child that has it
        #expect(table.answer(id: "a", generation: 7) == [1, 2, 5])
        #expect(table.answer(id: "a", generation: 7) == nil)  // answered already
        #expect(table.remove(4) == .init(id: "c", generation: 7, entryRemoved: true))
        #expect(table.remove(4) == nil)
        _ = table.register(6, id: "d", line: [4], runningGeneration: 7)
        _ = table.register(7, id: "e", line: [5], runningGeneration: nil)
        #expect(table.childExited(generation: 7) == [6])
        #expect(table.waiterCount == 1)
        #expect(table.removeAll() == [7])
    }

    @Test("restart delays double up to the maximum and start over after a stable run")
    func backoff() {
        var backoff = RestartBackoff(initial: .milliseconds(100), maximum: .seconds(1), stableAfter: .seconds(10))
        let delays = (0..<6).map { _ in backoff.delay(afterUptime: .seconds(1)) }
        #expect(delays == [100, 200, 400, 800, 1000, 1000].map { .milliseconds($0) })
        #expect(backoff.delay(afterUptime: .seconds(11)) == .milliseconds(100))
        #expect(backoff.delay(afterUptime: nil) == .milliseconds(200))
    }

    @Test("the log budget lets a burst through, then the rate, and counts the rest")
    func budget() {
        var budget = LogBudget(perSecond: 10, burst: 5)
        let start = Duration.seconds(7)
        let first = (0..<20).filter { _ in budget.allow(at: start) }.count
        #expect(first == 5)
        #expect(budget.takeSuppressed() == 15)
        #expect(budget.takeSuppressed() == 0)
        let later = (0..<20).filter { _ in budget.allow(at: start + .milliseconds(500)) }.count
        #expect(later == 5)  // 0.5 s at 10 lines/s, capped by the burst
    }

    @Test("exit statuses read as a person would say them")
    func exitStatus() {
        #expect(ExitStatus(waitStatus: 3 << 8) == .exited(3))
        #expect(ExitStatus(waitStatus: 9) == .signaled(9))
        #expect(ExitStatus.signaled(9).description == "was killed by signal 9 (SIGKILL)")
        #expect(ExitStatus.exited(0).description == "exited with status 0")
    }
}
