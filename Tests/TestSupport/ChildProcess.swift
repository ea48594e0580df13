import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A helper process started with posix_spawn, its stdin and stdout on pipes (stderr is captured to a pipe too).
final class ChildProcess {
    let pid: pid_t
    let arguments: [String]
    private var stdinFD: Int32
    private let stdoutFD: Int32
    private let stderrFD: Int32
    private var buffered: [UInt8] = []
    private(set) var exitStatus: Int32?

    /// Starts `arguments[0]` (a path) with `arguments`; `environment` adds to this process's environment.
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        self.arguments = arguments
        var inPipe: [Int32] = [0, 0]
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw TestFailure("pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        var env = ProcessInfo.processInfo.environment
        for (name, value) in environment { env[name] = value }
        let envStrings = env.map { "\($0.key)=\($0.value)" }

        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = envStrings.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw TestFailure("posix_spawn \(arguments[0]) failed: \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        stdinFD = inPipe[1]
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        if stdinFD >= 0 { close(stdinFD) }
        close(stdoutFD)
        close(stderrFD)
    }

    /// Writes a line to the child's stdin.
    func send(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { write(stdinFD, $0, strlen($0)) }
    }

    /// Closes the child's stdin (EOF).
    func closeInput() {
        if stdinFD >= 0 { close(stdinFD); stdinFD = -1 }
    }

    /// The next stdout line, waiting at most `timeout` seconds; nil at EOF or timeout.
    func readLine(timeout: Double = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffered.firstIndex(of: 10) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var fds = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fds, 1, Int32(min(left, 1) * 1000))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(stdoutFD, $0.baseAddress, $0.count) }
            if n <= 0 {
                if buffered.isEmpty { return nil }
                let line = String(decoding: buffered, as: UTF8.self)
                buffered.removeAll()
                return line
            }
            buffered.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads every remaining stdout line.
    func remainingOutput(timeout: Double = 60) -> [String] {
        var lines: [String] = []
        while let line = readLine(timeout: timeout) { lines.append(line) }
        return lines
    }

    /// Whatever the child wrote to stderr (read after it exited).
    func standardError() -> String {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let flags = fcntl(stderrFD, F_GETFL)
        _ = fcntl(stderrFD, F_SETFL, flags | O_NONBLOCK)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(stderrFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the child to end, at most `timeout` seconds (then SIGKILLs it and says so).
    @discardableResult
    func wait(timeout: Double = 60) throws -> Termination {
        if let exitStatus { return Termination(status: exitStatus) }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { break }
            if rc < 0 && errno != EINTR { throw TestFailure("waitpid: \(String(cString: strerror(errno)))") }
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                exitStatus = status
                throw TestFailure("\(arguments.joined(separator: " ")) did not finish within \(timeout)s; killed")
            }
            usleep(2000)
        }
        exitStatus = status
        return Termination(status: status)
    }

    /// Whether the child is still running (without reaping it).
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var info = siginfo_t()
        let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        return rc == 0 && info._sifields._sigchld.si_pid == 0
    }

    struct Termination: Equatable, CustomStringConvertible {
        let status: Int32
        var exitCode: Int32? { (status & 0x7F) == 0 ? (status >> 8) & 0xFF : nil }
        var signal: Int32? { (status & 0x7F) != 0 && (status & 0x7F) != 0x7F ? status & 0x7F : nil }
        var description: String {
            if let exitCode { return "exit \(exitCode)" }
            return "signal \(signal ?? -1)"
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
