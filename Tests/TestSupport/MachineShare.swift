import Foundation
import Synchronization
public import Testing

/// How much of the machine a test needs while it runs, for `swift test`'s parallel runs on a
/// small machine (two cores here).
///
/// Most tests are light and run with everything else. Tests that start real processes (the
/// bridge, the simulator, PostgreSQL, Python servers) take a *process slot*: at most
/// `MachineShare.processSlots` run at once, so a parallel run does not start dozens of processes
/// that starve each other's timers. Tests whose assertions involve wall-clock behaviour of real
/// processes (connection timeouts, kill loops, disk faults under a running bridge) take the
/// *whole machine*: they wait until no other process test runs, and none starts while they do.
/// Light tests keep running beside them; they are cheap enough not to disturb a timer by seconds.
///
/// As a trait on a suite (applies to each of its tests) or on one test:
///
///     @Suite("kill loop", .machine(.exclusive))
///     @Suite("end to end", .machine(.processes))
public struct MachineShare: TestTrait, SuiteTrait, TestScoping {
    public enum Need: Sendable {
        /// Runs beside at most `processSlots - 1` other process tests.
        case processes
        /// Runs with no other process test.
        case exclusive
    }

    /// How many process tests run at once.
    public static let processSlots = 3

    public var need: Need

    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Called for the suite too (testCase nil): only test cases hold a share, or a suite would
        // hold one while its own tests wait for it.
        guard testCase != nil else { return try await function() }
        let asked = ContinuousClock.now
        await MachineLock.shared.acquire(need)
        let granted = ContinuousClock.now
        defer { ShareLog.record(test: test, need: need, waited: granted - asked, held: ContinuousClock.now - granted) }
        do {
            try await Self.bounded(function, by: Self.timeLimit)
        } catch {
            await MachineLock.shared.release(need)
            throw error
        }
        await MachineLock.shared.release(need)
    }

    /// How long a process test may hold its share: one that takes longer fails (an issue is
    /// recorded at once) and is cancelled, so it cannot keep every later process test waiting,
    /// unless it is stuck in a wait that cancellation cannot end (then the issue names it).
    public static let timeLimit: Duration = .seconds(300)

    /// A process test ran past ``timeLimit``.
    public struct TimeLimitExceeded: Error, CustomStringConvertible {
        public var limit: Duration
        public var description: String { "a process test ran past \(limit) and was cancelled (it holds a share of the machine that others wait for)" }
    }

    /// Runs `function`, cancelled with ``TimeLimitExceeded`` when it takes longer than `limit`.
    static func bounded(_ function: @Sendable () async throws -> Void, by limit: Duration) async throws {
        try await withoutActuallyEscaping(function) { function in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await function() }
                group.addTask {
                    try await Task.sleep(for: limit)
                    // Said at once: a test stuck in a wait that cancellation cannot end still
                    // holds the group (and its share), but the run's output names it.
                    Issue.record(Comment(rawValue: TimeLimitExceeded(limit: limit).description))
                    throw TimeLimitExceeded(limit: limit)
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        }
    }
}

extension Trait where Self == MachineShare {
    /// This test (or each test of this suite) needs `need` of the machine while it runs.
    public static func machine(_ need: MachineShare.Need) -> Self { MachineShare(need: need) }
}

/// A first-come, first-served reader-writer semaphore: `processSlots` shared holders or one exclusive.
actor MachineLock {
    static let shared = MachineLock()

    private var processes = 0
    private var exclusive = false
    private var waiting: [(need: MachineShare.Need, continuation: CheckedContinuation<Void, Never>)] = []

    func acquire(_ need: MachineShare.Need) async {
        if waiting.isEmpty, grant(need) { return }
        await withCheckedContinuation { waiting.append((need, $0)) }
    }

    func release(_ need: MachineShare.Need) {
        switch need {
        case .processes: processes -= 1
        case .exclusive: exclusive = false
        }
        // In arrival order: an exclusive test that waits is not overtaken by later process tests.
        while let first = waiting.first, grant(first.need) {
            waiting.removeFirst()
            first.continuation.resume()
        }
    }

    /// Takes the share when it is free now.
    private func grant(_ need: MachineShare.Need) -> Bool {
        switch need {
        case .processes:
            guard !exclusive, processes < MachineShare.processSlots else { return false }
            processes += 1
        case .exclusive:
            guard !exclusive, processes == 0 else { return false }
            exclusive = true
        }
        return true
    }
}

/// With `MACHINE_SHARE_LOG=PATH` set, one line per process test is appended to PATH: seconds it
/// held its share, seconds it waited for it, the share, and the test. Where a parallel run's wall
/// time goes (docs/testing.md).
enum ShareLog {
    static let path = ProcessInfo.processInfo.environment["MACHINE_SHARE_LOG"]
    static let lock = Mutex(())

    static func record(test: Test, need: MachineShare.Need, waited: Duration, held: Duration) {
        guard let path else { return }
        func seconds(_ duration: Duration) -> String {
            String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        }
        let line = "\(seconds(held)) \(seconds(waited)) \(need) \(test.id)\n"
        lock.withLock { _ in
            guard let handle = FileHandle(forWritingAtPath: path) ?? {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                return FileHandle(forWritingAtPath: path)
            }() else { return }
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try? handle.close()
        }
    }
}
