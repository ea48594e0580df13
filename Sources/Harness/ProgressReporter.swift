import Foundation
import JUnit

#if canImport(Glibc)
import Glibc
#endif

/// Progress on standard error. On a terminal: one live line (the running testcase), rewritten in place. Otherwise
/// (a CI log, a file): plain lines only, never a control character: one line per finished testcase (and its
/// message, indented), and every `SHM_HARNESS_PROGRESS_INTERVAL` seconds (default 10, 0 for never) while
/// testcases run, a line `progress: N/M done, K running (NAMES), F failed, E errored, Ts elapsed`.
/// A summary at the end. Writes go straight to descriptor 2 and a failed write (EPIPE, a closed descriptor) is
/// dropped: progress never stops the run.
public final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private let live: Bool
    private var total = 0
    /// `run --repeat`: how many runs of each testcase (0: until a failure, no limit; 1: no repetition).
    private var repetitions = 1
    private var done = 0
    private var counts: [String: Int] = [:]
    private var running: [String] = []
    private var finished: [TestCaseResult] = []
    private let interval: Double
    private var started = Date()
    private var timer: (any DispatchSourceTimer)?

    /// The default period of the `progress:` line on a non-terminal, in seconds.
    public static let defaultInterval = 10.0

    public init() {
        live = isatty(2) == 1
        let text = ProcessInfo.processInfo.environment["SHM_HARNESS_PROGRESS_INTERVAL"] ?? ""
        // 0 turns the line off; anything else is at least 0.1 s (a log is not a terminal).
        interval = Double(text).flatMap { $0.isFinite && $0 >= 0 ? ($0 == 0 ? 0 : max($0, 0.1)) : nil } ?? Self.defaultInterval
    }

    deinit { timer?.cancel() }

    /// Writes to standard error with write(2): a closed or broken stderr (EBADF, EPIPE with SIGPIPE ignored)
    /// loses the progress, never the run. (Foundation's FileHandle.write traps on such an error.)
    public func say(_ text: String) { StandardError.write(text) }

    /// A testcase name or message for a log: control characters (ESC, CR, ...) become visible `\u{..}`.
    static func printable(_ text: String) -> String { ReportSummary.plain(text) }

    func start(total: Int, repetitions: Int = 1) {
        lock.withLock {
            self.total = total
            self.repetitions = repetitions
            started = Date()
        }
        switch repetitions {
        case 1: say("shm-harness: running \(total) testcase(s)\n")
        case 0: say("shm-harness: running each testcase until one fails\n")
        default: say("shm-harness: running \(total / max(1, repetitions)) testcase(s) \(repetitions) times: \(total) runs\n")
        }
        guard !live, interval > 0, total > 0 || repetitions == 0 else { return }
        let source = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        source.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(100))
        source.setEventHandler { [weak self] in self?.heartbeat() }
        lock.withLock { timer = source }
        source.resume()
    }

    /// `progress: 3/10 done, 2 running (lock.a, lock.b), 1 failed, 0 errored, 42s elapsed`.
    func heartbeat() {
        lock.withLock {
            guard timer != nil, done < total || repetitions == 0 else { return }
            var names = running.prefix(3).map(Self.printable).joined(separator: ", ")
            if running.count > 3 { names += ", +\(running.count - 3) more" }
            let elapsed = Int(Date().timeIntervalSince(started).rounded())
            var line = "progress: \(progressCount) done, \(running.count) running"
            if !running.isEmpty { line += " (\(names))" }
            line += ", \(counts["failed", default: 0]) failed, \(counts["errored", default: 0]) errored, \(elapsed)s elapsed\n"
            say(line)
        }
    }

    /// `3/10`, or `3` when the number of runs is open (`--until-failure` without `--repeat`).
    private var progressCount: String { repetitions == 0 ? "\(done)" : "\(done)/\(total)" }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
    }

    func began(_ id: String) {
        lock.withLock {
            running.append(id)
            if live { say("\r\u{1B}[K[\(progressCount)] \(Self.printable(id))") }
        }
    }

    func finished(_ result: TestCaseResult, repetition: Int? = nil) {
        lock.withLock {
            done += 1
            counts[result.status.word, default: 0] += 1
            finished.append(result)
            if let first = running.firstIndex(of: "\(result.classname).\(result.name)") { running.remove(at: first) }
            let mark: String
            switch result.status {
            case .passed: mark = "ok     "
            case .failed: mark = "FAIL   "
            case .errored: mark = "ERROR  "
            case .skipped: mark = "skip   "
            }
            var line = "\(mark) \(result.classname).\(result.name)"
            if let repetition { line += " run \(repetition)" + (repetitions > 1 ? "/\(repetitions)" : "") }
            line += " (\(String(format: "%.2f", result.time))s)"
            switch result.status {
            case .failed(let message, _), .errored(let message, _): line += "\n        " + message
            case .skipped(let message): line += ": " + message
            case .passed: break
            }
            // Continuation lines stay indented; no control character reaches the log.
            line = Self.printable(line).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                .map { $0.offset == 0 || $0.element.hasPrefix("        ") ? String($0.element) : "        " + $0.element }
                .joined(separator: "\n")
            if done == total { stopTimer() }
            if live { say("\r\u{1B}[K") }
            say(line + "\n")
            if live, let current = running.first { say("[\(progressCount)] \(Self.printable(current))") }
        }
    }

    /// passed/failed/errored/skipped and the slowest testcases.
    public func summary(reportPath: String) {
        lock.withLock {
            stopTimer()
            if live { say("\r\u{1B}[K") }
            let parts = ["passed", "failed", "errored", "skipped"].map { "\(counts[$0, default: 0]) \($0)" }
            say("\n" + (repetitions == 1 ? "" : "\(done) runs: ") + parts.joined(separator: ", ") + "\n")
            // With --repeat, each testcase once (its slowest run).
            var seen = Set<String>()
            let slowest = finished.sorted { $0.time > $1.time }.filter { seen.insert("\($0.classname).\($0.name)").inserted }.prefix(5).filter { $0.time > 0 }
            if !slowest.isEmpty {
                say("slowest: " + slowest.map { "\($0.classname).\($0.name) \(String(format: "%.2f", $0.time))s" }.joined(separator: ", ") + "\n")
            }
            say("report: \(reportPath)\n")
        }
    }
}

/// Standard error through write(2), ignoring errors: progress and warnings must never stop a run.
public enum StandardError {
    public static func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, base + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
