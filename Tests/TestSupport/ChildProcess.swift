import Foundation
import Harness

#if canImport(Glibc)
import Glibc
#endif

/// A helper process for tests: the runner's `SpawnedProcess` (posix_spawn, own process group, pipes) with
/// line reading, timeouts and a readable termination.
public final class ChildProcess {
    private let process: SpawnedProcess
    private var buffered: [UInt8] = []
    public var pid: pid_t { process.pid }
    public let arguments: [String]

    /// Starts `arguments[0]` with `arguments`; `environment` adds to this process's environment.
    public init(_ arguments: [String], environment: [String: String] = [:]) throws {
        self.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (name, value) in environment { env[name] = value }
        process = try SpawnedProcess(label: arguments[0], arguments: arguments, environment: env)
    }

    /// Writes a line to the child's stdin.
    public func send(_ line: String) { process.send(line) }

    /// Closes the child's stdin (EOF).
    public func closeInput() { process.closeInput() }

    /// The next stdout line, waiting at most `timeout` seconds; nil at EOF or timeout.
    public func readLine(timeout: Double = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = buffered.firstIndex(of: 10) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var fds = pollfd(fd: process.stdoutFD, events: Int16(POLLIN), revents: 0)
            if poll(&fds, 1, Int32(min(left, 1) * 1000)) <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(process.stdoutFD, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 {
                if buffered.isEmpty { return nil }
                defer { buffered.removeAll() }
                return String(decoding: buffered, as: UTF8.self)
            }
            buffered.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads every remaining stdout line.
    public func remainingOutput(timeout: Double = 60) -> [String] {
        var lines: [String] = []
        while let line = readLine(timeout: timeout) { lines.append(line) }
        return lines
    }

    /// Whatever the child wrote to stderr so far.
    public func standardError() -> String {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(process.stderrFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the child to end, at most `timeout` seconds (then SIGKILLs its group and says so).
    @discardableResult
    public func wait(timeout: Double = 60) throws -> Termination {
        let deadline = Date().addingTimeInterval(timeout)
        while process.poll() == nil {
            if Date() > deadline {
                process.killGroup()
                process.wait()
                throw TestFailure("\(arguments.joined(separator: " ")) did not finish within \(timeout)s; killed")
            }
            usleep(2000)
        }
        return Termination(status: process.wait())
    }

    /// Whether the child is still running.
    public var isRunning: Bool { process.poll() == nil }

    /// The scheduler state of the child's main thread (`/proc/PID/stat` field 3: R, S, D, Z...), nil once reaped.
    public var state: Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].first { $0 != " " }
    }

    /// The handshake for "the child blocks": after the child said it is about to block (a line the caller read),
    /// waits until its main thread sleeps in the kernel (state S or D), then checks it still sleeps after
    /// `settle` seconds. Throws, saying what it saw, if the child ends, keeps running, or wakes up.
    public func expectBlocked(timeout: Double = 30, settle: Double = 0.3) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            guard process.poll() == nil else { throw TestFailure("\(arguments.joined(separator: " ")) ended instead of blocking: \(standardError())") }
            if let state, state == "S" || state == "D" { break }
            if Date() > deadline { throw TestFailure("\(arguments.joined(separator: " ")) did not block within \(timeout)s (state \(state.map(String.init) ?? "gone"))") }
            usleep(1000)
        }
        usleep(useconds_t(settle * 1_000_000))
        guard process.poll() == nil, let state, state == "S" || state == "D" else {
            throw TestFailure("\(arguments.joined(separator: " ")) did not stay blocked for \(settle)s (state \(state.map(String.init) ?? "gone"))")
        }
    }

    public struct Termination: Equatable, CustomStringConvertible {
        public let status: Int32
        public var exitCode: Int32? { SpawnedProcess.exitCode(status) }
        public var signal: Int32? { SpawnedProcess.signal(status) }
        public var description: String { exitCode.map { "exit \($0)" } ?? "signal \(signal ?? -1)" }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
