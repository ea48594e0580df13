import Foundation
import Harness

#if canImport(Glibc)
import Glibc
#endif

struct HostileTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One run of a program, measured: its own wait status and resource usage (wait4), not the whole test
/// process's children.
struct Measured {
    var status: Int32
    /// Wall-clock time.
    var seconds: Double
    /// The child's own CPU time (user + system), which a loaded machine does not inflate.
    var cpuSeconds: Double
    /// The child's peak resident set (KiB), from its rusage.
    var maxRSSKiB: Int
    var stdout: String
    var stderr: String
    var timedOut: Bool

    var exitCode: Int32? { SpawnedProcess.exitCode(status) }
    var signal: Int32? { SpawnedProcess.signal(status) }
    var summary: String {
        "\(exitCode.map { "exit \($0)" } ?? "signal \(signal ?? -1)") in \(String(format: "%.2f", seconds)) s (CPU \(String(format: "%.2f", cpuSeconds)) s), max RSS \(maxRSSKiB / 1024) MiB\(timedOut ? " (killed at the deadline)" : ""); stderr: \(stderr.prefix(400))"
    }

    /// What standard error is: a file the test reads, closed (`2>&-`), or a pipe nobody reads any more.
    enum StandardError { case capture, closed, brokenPipe }

    /// Runs `arguments` with `environment`, at most `timeout` seconds (then SIGKILL), with a virtual memory
    /// ceiling (`ulimit -v`) so that a regression cannot take the machine down.
    static func run(
        _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
        stderr mode: StandardError = .capture, timeout: Double = 60, memoryLimitKiB: Int? = 4 << 20
    ) throws -> Measured {
        let outPath = temporaryPath("out")
        let errPath = temporaryPath("err")
        defer {
            unlink(outPath)
            unlink(errPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var pipeEnds: [Int32] = [-1, -1]
        switch mode {
        case .capture: posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        case .closed: posix_spawn_file_actions_addclose(&actions, 2)
        case .brokenPipe:
            guard pipe(&pipeEnds) == 0 else { throw HostileTestError("pipe" + " " + "pipe" + ": errno " + String(errno)) }
            close(pipeEnds[0])  // nobody will ever read: every write gets EPIPE
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
            posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        }
        defer { if pipeEnds[1] >= 0 { close(pipeEnds[1]) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The test process may ignore SIGPIPE; the child starts with the default, as from a shell.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var argv = arguments
        if let memoryLimitKiB {
            // `exec` keeps the pid: wait4 sees the program itself.
            argv = ["/bin/sh", "-c", "ulimit -v \(memoryLimitKiB) && exec \"$0\" \"$@\""] + arguments
        }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let start = Date()
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw HostileTestError("spawn" + " " + argv[0] + ": errno " + String(rc)) }
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        while true {
            let done = wait4(pid, &status, WNOHANG, &usage)
            if done == pid { break }
            if done < 0 && errno != EINTR { throw HostileTestError("wait4" + " " + "wait4" + ": errno " + String(errno)) }
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
                break
            }
            usleep(5_000)
        }
        let seconds = Date().timeIntervalSince(start)
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return Measured(status: status, seconds: seconds, cpuSeconds: cpu, maxRSSKiB: Int(usage.ru_maxrss), stdout: out, stderr: err, timedOut: timedOut)
    }
}

/// A private runtime and temp folder for one run: its journal, key files and run folder land there, so that
/// "nothing is left" is checked exactly (and other runs on the machine are neither seen nor cleaned).
struct PrivateRunPlace {
    let root: String
    var runtime: String { root + "/runtime" }
    var temp: String { root + "/tmp" }
    var runs: String { runtime + "/shm-harness/runs" }

    init() throws {
        root = temporaryPath("place")
        for path in [root, runtime, temp] {
            guard mkdir(path, 0o700) == 0 else { throw HostileTestError("mkdir" + " " + path + ": errno " + String(errno)) }
        }
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["XDG_RUNTIME_DIR"] = runtime
        env["TMPDIR"] = temp
        return env
    }

    /// Journals and run folders left behind.
    func leftovers() -> [String] {
        let journals = ((try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []).map { runs + "/" + $0 }
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: temp)) ?? [])
            .filter { $0.hasPrefix("shm-harness-run-") }.map { temp + "/" + $0 }
        return journals + folders
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}
