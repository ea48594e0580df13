import CShmShim
import Foundation
import JUnit
import ScenarioKit

#if canImport(Glibc)
import Glibc
#endif

/// Each testcase in its own process, in a private IPC namespace and a private mount namespace with its own
/// tmpfs on /dev/shm (done by CShmShim's constructor when SHM_HARNESS_ISOLATE=1), and a private TMPDIR for Qt's
/// key files: whatever the testcase leaves, System V and POSIX objects vanish with the namespace, and
/// testcases can run in parallel without seeing each other.
public enum Isolation {
    /// nil when isolation works here, else why not. Asks the lean worker (`--isolation-probe`: the same
    /// CShmShim constructor makes the namespaces) when it is built, else `shm-harness run-one --probe`.
    static func probe(harness: String, swiftWorker: String? = nil) -> String? {
        guard geteuid() == 0 else { return "namespaces need root" }
        var env = ProcessInfo.processInfo.environment
        env["SHM_HARNESS_ISOLATE"] = "1"
        let arguments = swiftWorker.map { [$0, "--isolation-probe"] } ?? [harness, "run-one", "--probe"]
        guard let child = try? SpawnedProcess(label: "isolation probe", arguments: arguments, environment: env) else {
            return "cannot start \(harness)"
        }
        child.closeInput()
        let status = child.wait()
        var reader = LineReader()
        let said = (reader.read(child.stderrFD) + reader.read(child.stdoutFD)).joined(separator: " ")
        return SpawnedProcess.exitCode(status) == 0 ? nil : (said.isEmpty ? "the probe ended with \(status)" : said)
    }

    /// The isolation state of this process, as the constructor left it: nil when isolated or not asked.
    public static func failure() -> String? {
        let status = shm_shim_isolation_status()
        guard status < 0 else { return nil }
        return "\(String(cString: shm_shim_isolation_failed_step())): \(String(cString: strerror(-status)))"
    }

    public static var isIsolated: Bool { shm_shim_isolation_status() == 1 }

    /// Runs one testcase in an isolated child (`shm-harness run-one`) and reads its result.
    static func runInChild(_ scenario: Scenario, environment: RunEnvironment, token: String, machineLeakCheck: Bool, journal: JournalWriter?, seed: UInt64 = 0, jitter: Duration? = nil) -> TestCaseResult {
        let start = Date()
        let directory = environment.workDirectory + "/iso-\(token)"
        mkdir(directory, 0o711)
        defer { RunEnvironment.removeTree(directory) }
        var env = ProcessInfo.processInfo.environment
        env["SHM_HARNESS_ISOLATE"] = "1"
        env["TMPDIR"] = directory
        if let journal { env["SHM_HARNESS_JOURNAL"] = journal.path }
        if let c = environment.cWorkerPath { env["SHM_HARNESS_C_WORKER"] = c }
        func errored(_ message: String) -> TestCaseResult {
            TestCaseResult(classname: scenario.classname, name: scenario.testName, time: Date().timeIntervalSince(start),
                           status: .errored(message: message, type: "isolation"), file: scenario.file)
        }
        let arguments = [
            environment.harnessPath, "run-one", "--file", scenario.file, "--classname", scenario.classname,
            "--testcase", scenario.testName, "--token", token, "--leak-check", machineLeakCheck ? "machine" : "own",
            environment.strict ? "--strict" : "--no-strict", "--seed", "\(seed)",
        ] + (jitter.map { ["--jitter", "\($0.nanoseconds)ns"] } ?? [])
        let child: SpawnedProcess
        do {
            child = try SpawnedProcess(label: "testcase \(scenario.identifier)", arguments: arguments, environment: env)
        } catch {
            return errored("could not start the isolated testcase process: \(error)")
        }
        child.closeInput()
        var out = LineReader()
        var err = LineReader()
        var result: TestCaseResult?
        var partial: TestCaseResult?
        var tail: [String] = []
        let deadline = Date().addingTimeInterval(scenario.timeout.seconds + 60)
        while child.poll() == nil || !out.closed {
            var fds = [pollfd(fd: child.stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: child.stderrFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 100)
            for line in out.read(child.stdoutFD) {
                if line.hasPrefix("result "), let data = line.dropFirst("result ".count).data(using: .utf8) {
                    result = try? JSONDecoder().decode(TestCaseResult.self, from: data)
                } else if line.hasPrefix("partial "), let data = line.dropFirst("partial ".count).data(using: .utf8) {
                    partial = try? JSONDecoder().decode(TestCaseResult.self, from: data)
                }
            }
            tail = Array((tail + err.read(child.stderrFD)).suffix(20))
            if Date() > deadline {
                child.killGroup()
                child.wait()
                // What the child said once its workers had ended (which worker hung, where, their output).
                var message = "the isolated testcase process did not end within the scenario's timeout + 60s; killed"
                guard var partial else { return errored(message + (tail.isEmpty ? "" : ": " + tail.joined(separator: " | "))) }
                switch partial.status {
                case .failed(let said, _), .errored(let said, _): message += " during teardown; before that: " + said
                case .passed, .skipped: message += " during teardown (the workers had done what they should)"
                }
                partial.status = .errored(message: message, type: "isolation")
                partial.time = Date().timeIntervalSince(start)
                return partial
            }
            if child.status != nil && out.closed { break }
        }
        let status = child.wait()
        guard var result else {
            return errored("the isolated testcase process ended with \(TestcaseRun.describe(status)) and no result: \(tail.joined(separator: " | "))")
        }
        // Nothing of the testcase may be left on the host either (files on disk named after the run).
        let onHost = IPCSnapshot.take().objects.filter { $0.contains(token) }
        if !onHost.isEmpty && result.status == .passed {
            result.status = .failed(message: "leaked onto the host: " + onHost.sorted().joined(separator: ", "), type: "leak")
        }
        return result
    }
}
