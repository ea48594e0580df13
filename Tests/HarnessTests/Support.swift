import Foundation
import Harness
import TestSupport
import ScenarioKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

enum Paths {
    static let packageRoot = TestPaths.packageRoot
    static let fixtures = packageRoot + "/Tests/HarnessTests/Fixtures"
    static let harness = TestPaths.harness
    static let schema = packageRoot + "/Tests/HarnessTests/Fixtures/junit-10.xsd"
    static let xmllint: String? = ["/usr/bin/xmllint", "/bin/xmllint"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// This test process's own runtime folder (XDG_RUNTIME_DIR, 0700) for the runs it starts: their journals
    /// go there, not into the folder every run of this user shares, so that two test runs at once (or a
    /// user's own runs) neither see nor clean each other's journals. Removed when the tests end.
    static let runtimeDirectory: String = {
        var template = Array("\(NSTemporaryDirectory())/shm-harness-tests-runtime-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(String(cString: strerror(errno)))") }
        atexit { try? FileManager.default.removeItem(atPath: Paths.runtimeDirectory) }
        return String(cString: made)
    }()

    /// A fresh runtime folder (0700, under this process's ``runtimeDirectory``) for one test whose runs must
    /// not be seen by the runs other tests start at the same time (each cleans the stale journals it finds).
    /// The caller removes it.
    static func privateRuntimeDirectory() throws -> String {
        var template = Array("\(runtimeDirectory)/private-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
        return String(cString: made)
    }
}

/// Processes found by what they are, never by a machine-wide name search: descendants of a given process, or
/// processes whose command line contains a marker unique to one test.
enum Processes {
    struct Entry: Hashable, CustomStringConvertible {
        let pid: pid_t
        let start: UInt64
        var description: String { "\(pid) (\(Processes.commandLine(pid) ?? "gone"))" }
    }

    /// pid, parent pid, state and start time from /proc/PID/stat.
    static func stat(_ pid: pid_t) -> (ppid: pid_t, state: Character, start: UInt64)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ppid = pid_t(fields[1]), let start = UInt64(fields[19]), let state = fields[0].first else { return nil }
        return (ppid, state, start)
    }

    static func commandLine(_ pid: pid_t) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
    }

    static func all() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// Every living descendant of `root` (children, their children...).
    static func descendants(of root: pid_t) -> [Entry] {
        var children: [pid_t: [Entry]] = [:]
        for pid in all() {
            if let info = stat(pid), info.state != "Z" { children[info.ppid, default: []].append(Entry(pid: pid, start: info.start)) }
        }
        var found: [Entry] = []
        var queue = [root]
        while let next = queue.popLast() {
            for child in children[next] ?? [] {
                found.append(child)
                queue.append(child.pid)
            }
        }
        return found
    }

    /// Whether this very process (same pid and start time) still lives (a zombie does not).
    static func alive(_ entry: Entry) -> Bool {
        guard let info = stat(entry.pid) else { return false }
        return info.start == entry.start && info.state != "Z"
    }

    /// Processes whose command line contains `marker` (a string unique to one test).
    static func withMarker(_ marker: String) -> [pid_t] {
        all().filter { $0 != getpid() && commandLine($0)?.contains(marker) == true }
    }

    /// Waits until every one of `entries` is gone; throws, naming the survivors, after `timeout` seconds.
    static func waitUntilGone(_ entries: [Entry], timeout: Double = 10, what: String) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = entries.filter(alive)
            if left.isEmpty { return }
            if Date() > deadline {
                throw TestFailure("\(what): still running after \(timeout)s: \(left.map(\.description).joined(separator: ", "))")
            }
            usleep(20_000)
        }
    }
}

/// Runs a command to its end: exit status, stdout, stderr.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var exitCode: Int32? { SpawnedProcess.exitCode(status) }

    static func command(_ arguments: [String], timeout: Double = 300, environment: [String: String] = [:]) throws -> Run {
        let process = try SpawnedProcess(label: arguments[0], arguments: arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new })
        process.closeInput()
        var out: [UInt8] = []
        var err: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        func drain(_ fd: Int32, into data: inout [UInt8]) -> Bool {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { data.append(contentsOf: buffer[0..<n]) }
            return n == 0
        }
        var outDone = false
        var errDone = false
        while !(outDone && errDone) {
            var fds = [pollfd(fd: process.stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: process.stderrFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 100)
            if !outDone && fds[0].revents != 0 { outDone = drain(process.stdoutFD, into: &out) }
            if !errDone && fds[1].revents != 0 { errDone = drain(process.stderrFD, into: &err) }
            if Date() > deadline {
                process.killGroup()
                break
            }
        }
        let status = process.wait()
        return Run(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// `shm-harness ARGS`, with this test process's own runtime folder (`Paths.runtimeDirectory`) for journals.
    static func harness(_ arguments: [String], timeout: Double = 300, runtimeDirectory: String = Paths.runtimeDirectory) throws -> Run {
        try command([Paths.harness] + arguments, timeout: timeout, environment: ["XDG_RUNTIME_DIR": runtimeDirectory])
    }
}

/// A unique temporary file path (removed by the caller).
func temporaryPath(_ name: String) -> String {
    "\(NSTemporaryDirectory())/shm-harness-test-\(getpid())-\(UInt32.random(in: 0 ... .max))-\(name)"
}

/// Validates a JUnit file against the Jenkins schema with xmllint; nil when valid, else xmllint's words.
func schemaProblems(_ path: String) throws -> String? {
    guard let xmllint = Paths.xmllint else { return "xmllint is not installed" }
    let run = try Run.command([xmllint, "--noout", "--schema", Paths.schema, path])
    return run.exitCode == 0 ? nil : run.stderr
}

/// The loader must refuse `yaml` (read as `file`) with an error whose message contains `message`, at
/// `file:line:column` exactly; `name` labels the case in failures. Every table of broken scenarios uses it.
func expectRefusal(_ name: String, _ yaml: String, line: Int, column: Int, message: String, file: String = "broken.yaml",
                   sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    do {
        let loaded = try ScenarioLoader.load(text: yaml, file: file)
        Issue.record("\(name): loaded \(loaded.count) testcase(s)", sourceLocation: sourceLocation)
    } catch {
        let first = try #require(error.errors.first { $0.message.contains(message) }, "\(name): \(error)", sourceLocation: sourceLocation)
        #expect(first.location.line == line && first.location.column == column, "\(name): \(first)", sourceLocation: sourceLocation)
        #expect(first.description.hasPrefix("\(file):\(line):\(column): "), "\(name): \(first)", sourceLocation: sourceLocation)
    }
}
