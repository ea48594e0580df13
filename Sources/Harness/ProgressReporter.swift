import Foundation
import JUnit

#if canImport(Glibc)
import Glibc
#endif

/// Progress on standard error: one live line on a terminal, plain lines otherwise; a summary at the end.
public final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private let live: Bool
    private var total = 0
    private var done = 0
    private var counts: [String: Int] = [:]
    private var running: [String] = []
    private var finished: [TestCaseResult] = []

    public init() { live = isatty(2) == 1 }

    /// Writes to standard error with write(2): a closed or broken stderr (EBADF, EPIPE with SIGPIPE ignored)
    /// loses the progress, never the run. (Foundation's FileHandle.write traps on such an error.)
    public func say(_ text: String) { StandardError.write(text) }

    func start(total: Int) {
        lock.withLock { self.total = total }
        say("shm-harness: running \(total) testcase(s)\n")
    }

    func began(_ id: String) {
        lock.withLock {
            running.append(id)
            if live { say("\r\u{1B}[K[\(done)/\(total)] \(id)") }
        }
    }

    func finished(_ result: TestCaseResult) {
        lock.withLock {
            done += 1
            counts[result.status.word, default: 0] += 1
            finished.append(result)
            running.removeAll { $0 == "\(result.classname).\(result.name)" }
            let mark: String
            switch result.status {
            case .passed: mark = "ok     "
            case .failed: mark = "FAIL   "
            case .errored: mark = "ERROR  "
            case .skipped: mark = "skip   "
            }
            var line = "\(mark) \(result.classname).\(result.name) (\(String(format: "%.2f", result.time))s)"
            switch result.status {
            case .failed(let message, _), .errored(let message, _): line += "\n        " + message
            case .skipped(let message): line += ": " + message
            case .passed: break
            }
            if live { say("\r\u{1B}[K") }
            say(line + "\n")
            if live, let current = running.first { say("[\(done)/\(total)] \(current)") }
        }
    }

    /// passed/failed/errored/skipped and the slowest testcases.
    public func summary(reportPath: String) {
        lock.withLock {
            if live { say("\r\u{1B}[K") }
            let parts = ["passed", "failed", "errored", "skipped"].map { "\(counts[$0, default: 0]) \($0)" }
            say("\n" + parts.joined(separator: ", ") + "\n")
            let slowest = finished.sorted { $0.time > $1.time }.prefix(5).filter { $0.time > 0 }
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
