import CShmShim

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` (never fork from this large parent), in its own process group,
/// with its stdin, stdout and stderr on pipes.
public final class SpawnedProcess {
    public let pid: pid_t
    public let label: String
    /// Write end of the child's stdin (-1 once closed).
    public private(set) var stdinFD: Int32
    public let stdoutFD: Int32
    public let stderrFD: Int32
    public private(set) var status: Int32?

    /// Starts `arguments[0]` (a path, or a name looked up in PATH).
    /// - Parameters:
    ///   - environment: the complete environment of the child.
    ///   - inherit: descriptors the child gets at the same number (CLOEXEC cleared there).
    ///   - descriptorLimit: the child's soft RLIMIT_NOFILE (`limits: nofile`). posix_spawn cannot set one, so this
    ///     process's own soft limit is lowered around the spawn alone (the child inherits it) and restored: only
    ///     for a process that spawns from one thread (an isolated testcase's), where no other open can fail meanwhile.
    public init(
        label: String, arguments: [String], environment: [String: String], inherit: [Int32] = [], descriptorLimit: Int? = nil
    ) throws(SpawnError) {
        self.label = label
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        // Close-on-exec from the start: with --jobs, another thread may be spawning at this very moment.
        guard shm_shim_pipe_cloexec(&inPipe) == 0 else { throw SpawnError(label, "pipe2", errno) }
        guard shm_shim_pipe_cloexec(&outPipe) == 0 else { close(inPipe[0]); close(inPipe[1]); throw SpawnError(label, "pipe2", errno) }
        guard shm_shim_pipe_cloexec(&errPipe) == 0 else {
            for fd in inPipe + outPipe { close(fd) }
            throw SpawnError(label, "pipe2", errno)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in inherit {
            // glibc clears FD_CLOEXEC when a dup2 action names the same descriptor twice.
            posix_spawn_file_actions_adddup2(&actions, fd, fd)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        var saved = rlimit()
        var lowered = false
        if let descriptorLimit, getrlimit(RLIMIT_NOFILE_VALUE, &saved) == 0 {
            var limit = saved
            limit.rlim_cur = rlim_t(descriptorLimit)
            lowered = setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0
            if !lowered {
                let error = errno
                for fd in inPipe + outPipe + errPipe { close(fd) }
                throw SpawnError(label, "setrlimit(RLIMIT_NOFILE, \(descriptorLimit))", error)
            }
        }
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        if lowered { _ = setrlimit(RLIMIT_NOFILE_VALUE, &saved) }
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(label, "posix_spawn \(arguments[0])", rc)
        }
        self.pid = pid
        stdinFD = inPipe[1]
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
        _ = fcntl(stdoutFD, F_SETFL, fcntl(stdoutFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(stderrFD, F_SETFL, fcntl(stderrFD, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        if status == nil {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var s: Int32 = 0
            waitpid(pid, &s, 0)
        }
        if stdinFD >= 0 { close(stdinFD) }
        close(stdoutFD)
        close(stderrFD)
    }

    /// Sends a line to the child's stdin; false if it is gone.
    @discardableResult
    public func send(_ line: String) -> Bool {
        guard stdinFD >= 0 else { return false }
        var text = line + "\n"
        return text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(stdinFD, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    public func closeInput() {
        if stdinFD >= 0 {
            close(stdinFD)
            stdinFD = -1
        }
    }

    /// Reaps the child if it ended; returns its wait status.
    public func poll() -> Int32? {
        if let status { return status }
        var s: Int32 = 0
        let rc = waitpid(pid, &s, WNOHANG)
        if rc == pid { status = s }
        return status
    }

    /// Waits for the end.
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var s: Int32 = 0
        while waitpid(pid, &s, 0) == -1 && errno == EINTR {}
        status = s
        return s
    }

    /// SIGKILLs the child's whole process group.
    public func killGroup() {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }

    public static func exitCode(_ status: Int32) -> Int32? { (status & 0x7F) == 0 ? (status >> 8) & 0xFF : nil }
    public static func signal(_ status: Int32) -> Int32? {
        let s = status & 0x7F
        return s != 0 && s != 0x7F ? s : nil
    }
}

public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
    init(_ label: String, _ call: String, _ code: Int32) {
        description = "\(label): \(call) failed: \(String(cString: strerror(code)))"
    }
}

/// Reads lines from a non-blocking descriptor as they arrive.
struct LineReader {
    private var buffer: [UInt8] = []
    private(set) var closed = false

    /// Reads what is available; returns the complete lines.
    mutating func read(_ fd: Int32) -> [String] {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                continue
            }
            if n == 0 { closed = true }
            if n < 0 && errno == EINTR { continue }
            break
        }
        var lines: [String] = []
        while let newline = buffer.firstIndex(of: 10) {
            lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
            buffer.removeSubrange(...newline)
        }
        if closed && !buffer.isEmpty {
            lines.append(String(decoding: buffer, as: UTF8.self))
            buffer.removeAll()
        }
        return lines
    }
}
