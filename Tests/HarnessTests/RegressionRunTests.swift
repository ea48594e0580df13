import Foundation
import JUnit
import ScenarioKit
import TestSupport
import Testing

@testable import Harness

#if canImport(Glibc)
import Glibc
#endif

/// Regression runs (issue 13): `--repeat` and flaky outcomes, seeded chaos and its replay, baselines. Each
/// check has its negative control. (Merged shards equal an unsharded run: ReportToolTests.)
@Suite(.serialized) struct RegressionRunTests {
    static let flaky = Paths.fixtures + "/chaos/flaky-kill.yaml"

    func read(_ path: String) throws -> JUnitReport {
        try JUnitReader.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: path))), path: path)
    }

    func expectValid(_ path: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let problems = try schemaProblems(path)
        try #require(problems != "xmllint is not installed", "install libxml2-utils", sourceLocation: sourceLocation)
        #expect(problems == nil, "\(path) must validate: \(problems ?? "")", sourceLocation: sourceLocation)
    }

    func property(_ name: String, _ result: TestCaseResult) -> String? { result.properties.first { $0.name == name }?.value }

    /// `run N: WORD (T s, seed S) [chaos: victim/0 SIGKILL at 59.7ms]...` lines of a repeated testcase.
    struct RunLine: Equatable {
        var run: Int
        var word: String
        var seed: String
        var killMs: Double?
        /// The line without its time (what a replay must reproduce).
        var timeless: String
    }

    func runLines(_ result: TestCaseResult) -> [RunLine] {
        result.output.split(separator: "\n").compactMap { line -> RunLine? in
            guard let m = line.wholeMatch(of: #/run (\d+): (\w+) \([0-9.]+s, seed (\d+)\)(.*)/#) else { return nil }
            let kill = m.output.4.firstMatch(of: #/SIGKILL at ([0-9.]+)ms/#).flatMap { Double($0.output.1) }
            let timeless = "run \(m.output.1): \(m.output.2) seed \(m.output.3)\(m.output.4)"
            return RunLine(run: Int(m.output.1)!, word: String(m.output.2), seed: String(m.output.3), killMs: kill, timeless: timeless)
        }
    }

    /// A copy of the flaky fixture with another chaos window, in a temporary folder.
    func flakyVariant(window: String) throws -> (folder: String, file: String) {
        var template = Array("\(NSTemporaryDirectory())/shm-harness-regress-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp") }
        let folder = String(cString: made)
        let text = try String(contentsOfFile: Self.flaky, encoding: .utf8).replacingOccurrences(of: "window: [1ms, 1s]", with: "window: \(window)")
        #expect(text.contains("window: \(window)"))
        let file = folder + "/flaky-kill.yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return (folder, file)
    }

    // MARK: --repeat

    @Test func repeatReportsAFlakyScenarioAsFlakyWithTheRightCounts() throws {
        let junit = temporaryPath("flaky.xml")
        let ok = temporaryPath("flaky-ok.xml")
        let always = temporaryPath("always.xml")
        let variant = try flakyVariant(window: "[1ms, 50ms]")
        defer { for path in [junit, ok, always] { unlink(path) }; try? FileManager.default.removeItem(atPath: variant.folder) }
        // Seed 42 gives both outcomes in 6 runs (kills at 97 ms to 763 ms; the store is at 300 ms).
        let run = try Run.harness(["run", "--leak-check", "own", "--jobs", "3", "--repeat", "6", "--seed", "42", "--junit", junit, Self.flaky])
        #expect(run.exitCode == 1, "flaky fails the run by default: \(run.stderr)")
        try expectValid(junit)
        let result = try #require(try read(junit).cases.first)
        guard case .failed(let message, let type) = result.status else { Issue.record("\(result.status)"); return }
        #expect(type == "flaky")
        let lines = runLines(result)
        try #require(lines.count == 6, "\(result.output)")
        // Each run's verdict follows from when the kill came (the boundary itself is not judged: a worker's start
        // takes some time); and the report's counts are those of the runs.
        for line in lines {
            let kill = try #require(line.killMs, "\(line)")
            if kill < 250 { #expect(line.word == "failed", "killed at \(kill) ms, before the store: \(line)") }
            if kill > 700 { #expect(line.word == "passed", "killed at \(kill) ms, after the store: \(line)") }
        }
        let passed = lines.filter { $0.word == "passed" }.count
        let failed = lines.filter { $0.word == "failed" }.count
        try #require(passed > 0 && failed > 0, "seed 42 gives both outcomes: \(lines)")
        #expect(property("runs", result) == "6")
        #expect(property("passed_runs", result) == "\(passed)")
        #expect(property("failed_runs", result) == "\(failed)")
        #expect(property("flaky", result) == "true")
        #expect(message.hasPrefix("flaky: \(passed) of 6 runs passed, \(failed) failed, 0 errored"), "\(message)")
        for line in lines {
            let mark = line.word == "passed" ? "ok     " : "FAIL   "
            #expect(run.stderr.contains("\(mark) chaos.flaky-kill run \(line.run)/6 ("), "one progress line per run: \(run.stderr)")
        }
        let summary = try Run.harness(["report", "summary", junit])
        #expect(summary.stdout.contains("flaky (1):") && summary.stdout.contains("passed \(passed) of 6 runs, failed \(failed)"), "\(summary.stdout)")

        // --flaky-ok: the same runs pass the run; the testcase passes, marked flaky.
        let lenient = try Run.harness(["run", "--leak-check", "own", "--jobs", "3", "--repeat", "6", "--seed", "42", "--flaky-ok", "--junit", ok, Self.flaky])
        #expect(lenient.exitCode == 0, "\(lenient.stderr)")
        try expectValid(ok)
        let marked = try #require(try read(ok).cases.first)
        #expect(marked.status == .passed && property("flaky", marked) == "true")
        // The same seed, the same kills; the verdicts too, where the kill is far from the store (timing decides near it).
        let clear = { (all: [RunLine]) in all.filter { ($0.killMs ?? 0) < 250 || ($0.killMs ?? 0) > 700 }.map { "\($0.run) \($0.word)" } }
        #expect(runLines(marked).map(\.killMs) == lines.map(\.killMs))
        #expect(clear(runLines(marked)) == clear(lines))

        // Negative control: killed before the store on every seed, the testcase is failed, not flaky.
        let steady = try Run.harness(["run", "--leak-check", "own", "--jobs", "3", "--repeat", "4", "--seed", "42", "--junit", always, variant.file])
        #expect(steady.exitCode == 1)
        try expectValid(always)
        let failing = try #require(try read(always).cases.first)
        guard case .failed(let steadyMessage, let steadyType) = failing.status else { Issue.record("\(failing.status)"); return }
        #expect(steadyType == "expectation" && steadyMessage.hasSuffix("(0 of 4 runs passed, 4 failed, 0 errored)"), "\(steadyMessage)")
        #expect(property("flaky", failing) == nil && property("failed_runs", failing) == "4")
    }

    @Test func untilFailureStopsAtTheFirstFailure() throws {
        let junit = temporaryPath("until.xml")
        defer { unlink(junit) }
        // Seed 1: runs 1 and 2 are killed after 850 ms (past the store), run 3 at 195 ms (before it); no limit is given.
        let run = try Run.harness(["run", "--leak-check", "own", "--until-failure", "--seed", "1", "--junit", junit, Self.flaky])
        #expect(run.exitCode == 1, "\(run.stderr)")
        try expectValid(junit)
        let result = try #require(try read(junit).cases.first)
        #expect(runLines(result).map(\.word) == ["passed", "passed", "failed"], "\(result.output)")
        #expect(try read(junit).suites[0].properties.contains { $0.name == "harness.repeat" && $0.value == "unbounded" })
        // Negative control: a cap below the first failure ends the run with every run passed.
        let capped = try Run.harness(["run", "--leak-check", "own", "--until-failure", "--repeat", "2", "--seed", "1", "--junit", junit, Self.flaky])
        #expect(capped.exitCode == 0, "\(capped.stderr)")
        try expectValid(junit)
        let two = try #require(try read(junit).cases.first)
        #expect(two.status == .passed && property("runs", two) == "2")
    }

    @Test func ctrlCEndsAnUnboundedRunWithItsReport() throws {
        let junit = temporaryPath("interrupted.xml")
        defer { unlink(junit) }
        let catalogue = Paths.fixtures + "/regression/quick.yaml"
        var env = ProcessInfo.processInfo.environment
        env["XDG_RUNTIME_DIR"] = Paths.runtimeDirectory
        let process = try SpawnedProcess(label: "until-failure", arguments: [Paths.harness, "run", "--leak-check", "own", "--until-failure", "--junit", junit, catalogue], environment: env)
        process.closeInput()
        var err = LineReader()
        var said: [String] = []
        let deadline = Date().addingTimeInterval(120)
        // Round 2 has begun: the run is repeating, with no end of its own.
        while !said.contains(where: { $0.contains(" run 2 (") }) && Date() < deadline && process.poll() == nil {
            var fds = [pollfd(fd: process.stderrFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, 100)
            said += err.read(process.stderrFD)
        }
        try #require(process.status == nil, "an unbounded run of passing testcases does not end by itself: \(said)")
        kill(process.pid, SIGINT)
        let ended = Date().addingTimeInterval(60)
        while process.poll() == nil && Date() < ended { usleep(20_000) }
        if process.status == nil { process.killGroup() }
        let status = process.wait()
        #expect(SpawnedProcess.exitCode(status) == 130, "interrupted, nothing failed: \(TestcaseRun.describe(status))")
        try expectValid(junit)
        let report = try read(junit)
        #expect(report.suites[0].properties.contains { $0.name == "harness.interrupted" && $0.value == "true" })
        #expect(report.cases.count == 4 && report.cases.allSatisfy { $0.status == .passed && Int(property("runs", $0) ?? "") ?? 0 >= 1 })
    }

    // MARK: --seed

    @Test func theRerunCommandOfAFailureReplaysItsChaosExactly() throws {
        let first = temporaryPath("first.xml")
        let replay = temporaryPath("replay.xml")
        let other = temporaryPath("other.xml")
        defer { for path in [first, replay, other] { unlink(path) } }
        let run = try Run.harness(["run", "--leak-check", "own", "--repeat", "6", "--jobs", "3", "--seed", "42", "--junit", first, Self.flaky])
        #expect(run.exitCode == 1)
        let result = try #require(try read(first).cases.first)
        // The failed run killed earliest (far from the store at 300 ms, so its replay fails on a loaded machine too).
        let failedRun = try #require(runLines(result).filter { $0.word == "failed" }.min { ($0.killMs ?? 0) < ($1.killMs ?? 0) })
        try #require((failedRun.killMs ?? 1000) < 250, "\(result.output)")
        // Each failed run carries the one command that re-runs just it.
        guard case .failed = result.status else { Issue.record("\(result.status)"); return }
        let commands = result.output.split(separator: "\n").filter { $0.hasPrefix("  re-run: shm-harness run ") }
        #expect(commands.count == runLines(result).filter { $0.word == "failed" }.count)
        let command = try #require(commands.first { $0.hasSuffix("--seed \(failedRun.seed)") }, "\(result.output)")
        #expect(result.detail.contains("re-run: shm-harness run "), "the failure's text has the first failure's command")
        let arguments = command.dropFirst("  re-run: shm-harness ".count)
        let again = try Run.command(["/bin/sh", "-c", "exec \"$0\" \(arguments) --leak-check own --junit \"$1\"", Paths.harness, replay],
                                    environment: ["XDG_RUNTIME_DIR": Paths.runtimeDirectory])
        #expect(again.exitCode == 1, "the replay fails as the run did: \(again.stderr)")
        try expectValid(replay)
        let replayed = try #require(try read(replay).cases.first)
        #expect(replayed.status.word == "failed")
        #expect(property("chaos.kill.1", replayed) == String(format: "victim/0 SIGKILL at %.1fms", failedRun.killMs ?? -1), "the same kill at the same point")
        #expect(again.stderr.contains("seed \(failedRun.seed)"), "the run prints its seed")
        #expect(try read(replay).suites[0].properties.contains { $0.name == "harness.seed" && $0.value == failedRun.seed }, "and writes it into the report")

        // Negative control: another seed is another kill.
        let different = try Run.harness(["run", "--leak-check", "own", "--seed", "43", "--junit", other, Self.flaky])
        try expectValid(other)
        let elsewhere = try #require(try read(other).cases.first)
        #expect(different.exitCode != nil && property("chaos.kill.1", elsewhere) != property("chaos.kill.1", replayed))
    }

    @Test func aSeedReplaysStartDelaysKillsAndVerdicts() throws {
        let catalogue = Paths.packageRoot + "/scenarios/chaos/kill-lock-holder.yaml"
        let paths = (0..<3).map { temporaryPath("seed\($0).xml") }
        defer { for path in paths { unlink(path) } }
        func chaos(_ seed: String, _ path: String) throws -> [String] {
            let run = try Run.harness(["run", "--leak-check", "own", "--no-strict", "--seed", seed, "--repeat", "2", "--jobs", "2", "--filter", "*impl=swift*", "--junit", path, catalogue])
            #expect(run.exitCode == 0, "the catalogue's chaos scenario passes on every seed: \(run.stderr)")
            try expectValid(path)
            let result = try #require(try read(path).cases.first)
            return runLines(result).map(\.timeless)
        }
        let a = try chaos("1234", paths[0])
        let b = try chaos("1234", paths[1])
        try #require(a.count == 2)
        #expect(a == b, "same seed: same kills at the same points, same verdicts")
        #expect(a.allSatisfy { $0.contains("SIGKILL at") && $0.contains(": passed ") || $0.contains(" passed seed ") }, "\(a)")
        // Negative control: another seed, other choices.
        #expect(try chaos("1235", paths[2]) != a)
    }

    /// The catalogue's chaos scenario passes on every seed because System V undo frees a killed holder's lock;
    /// its negative control, the same file on POSIX semaphores (no undo), fails on seeds whose kill finds the
    /// victim holding the lock.
    @Test func theChaosScenarioFailsWithoutUndo() throws {
        var template = Array("\(NSTemporaryDirectory())/shm-harness-regress-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp") }
        let folder = String(cString: made)
        let junit = temporaryPath("posix.xml")
        defer { unlink(junit); try? FileManager.default.removeItem(atPath: folder) }
        let text = try String(contentsOfFile: Paths.packageRoot + "/scenarios/chaos/kill-lock-holder.yaml", encoding: .utf8)
        let posix = text.replacingOccurrences(of: "backend: systemv", with: "backend: posix").replacingOccurrences(of: "timeout: 60s", with: "timeout: 5s")
        #expect(posix.contains("backend: posix") && posix.contains("timeout: 5s"))
        try posix.write(toFile: folder + "/kill-lock-holder.yaml", atomically: true, encoding: .utf8)
        let run = try Run.harness(["run", "--leak-check", "own", "--no-strict", "--repeat", "4", "--jobs", "2", "--seed", "7", "--flaky-ok", "--junit", junit, folder])
        try expectValid(junit)
        let results = try read(junit).cases
        let problems = results.flatMap(runLines).filter { $0.word != "passed" }
        #expect(run.exitCode == 1 || results.contains { property("flaky", $0) == "true" }, "\(run.stderr)")
        #expect(!problems.isEmpty, "a killed holder's POSIX lock is never released: \(results.map(\.output))")
    }

    @Test func thePlanDependsOnTheSeedAlone() throws {
        let yaml = """
            timeout: 10s
            resources:
              s: {kind: segment, size: 64}
            chaos:
              - {kill: g, member: random, signal: SIGTERM, window: [10ms, 200ms]}
              - {kill: g, member: all, window: [1ms, 2ms]}
            start-delay: {max: 20ms}
            workers:
              - name: g
                count: 5
                steps: [sleep: 1ms]
            """
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "p.yaml").first)
        let one = ChaosPlan(scenario: scenario, seed: 7, jitter: nil)
        let two = ChaosPlan(scenario: scenario, seed: 7, jitter: nil)
        #expect(one.properties.map(\.value) == two.properties.map(\.value))
        #expect(one.kills.count == 2 && one.kills[0].members.count == 1 && one.kills[1].members == [0, 1, 2, 3, 4])
        #expect(one.kills[0].signal == SIGTERM && one.kills[1].signal == SIGKILL)
        #expect(one.kills.allSatisfy { $0.at >= .milliseconds(1) && $0.at <= .milliseconds(200) })
        #expect(one.startDelays.count == 5 && one.startDelays.values.allSatisfy { $0 <= .milliseconds(20) })
        // Negative control: another seed, another plan; the repetition seeds differ from each other.
        #expect(ChaosPlan(scenario: scenario, seed: 8, jitter: nil).properties.map(\.value) != one.properties.map(\.value))
        #expect(Set((1...50).map { ChaosSeed.repetition($0, of: 42) }).count == 50)
        #expect(ChaosSeed.repetition(1, of: 42) == 42)
        #expect(ChaosSeed.testcase("a.b", runSeed: 1) != ChaosSeed.testcase("a.c", runSeed: 1))

        // --jitter: start delays for a scenario that asks for none; none without it.
        let plain = try #require(try ScenarioLoader.load(text: "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - {name: w, count: 3, steps: [sleep: 1ms]}\n", file: "j.yaml").first)
        let jittered = ChaosPlan(scenario: plain, seed: 7, jitter: .milliseconds(15))
        #expect(jittered.startDelays.count == 3 && jittered.startDelays.values.allSatisfy { $0 <= .milliseconds(15) })
        #expect(jittered.properties.contains { $0.name == "chaos.start_delays" })
        #expect(ChaosPlan(scenario: plain, seed: 7, jitter: nil).isEmpty)
    }

    static let brokenChaos: [(String, String, Int, Int, String)] = [
        ("unknown group", "chaos:\n  - {kill: nobody, window: [1ms, 2ms]}\n", 8, 12, "no worker group 'nobody'"),
        ("window reversed", "chaos:\n  - {kill: g, window: [20ms, 2ms]}\n", 8, 30, "before it starts"),
        ("window not a pair", "chaos:\n  - {kill: g, window: 10ms}\n", 8, 23, "window must be a list of two durations"),
        ("window past timeout", "chaos:\n  - {kill: g, window: [1ms, 20s]}\n", 8, 29, "not before the scenario's timeout"),
        ("bad signal", "chaos:\n  - {kill: g, signal: SIGNOPE, window: [1ms, 2ms]}\n", 8, 23, "unknown signal 'SIGNOPE'"),
        ("bad member", "chaos:\n  - {kill: g, member: some, window: [1ms, 2ms]}\n", 8, 23, "unknown chaos member 'some'"),
        ("no window", "chaos:\n  - {kill: g}\n", 8, 5, "needs window:"),
        ("unknown key", "chaos:\n  - {kill: g, when: 1ms}\n", 8, 15, "unknown key 'when'"),
        ("start-delay without max", "start-delay: {min: 1ms}\n", 7, 15, "unknown key 'min'"),
        ("start-delay not a duration", "start-delay: {max: soon}\n", 7, 20, "must be a duration"),
    ]

    @Test(arguments: brokenChaos.indices)
    func brokenChaosNamesThePlace(index: Int) throws {
        let (name, tail, line, column, message) = Self.brokenChaos[index]
        let yaml = "timeout: 10s\nresources:\n  s: {kind: segment, size: 64}\nworkers:\n  - name: g\n    steps: [sleep: 1ms]\n" + tail
        try expectRefusal(name, yaml, line: line, column: column, message: message, file: "chaos.yaml")
        // Negative control: the same file with a correct entry loads.
        #expect(try ScenarioLoader.load(text: yaml.replacingOccurrences(of: tail, with: "chaos:\n  - {kill: g, window: [1ms, 2ms]}\n"), file: "ok.yaml").count == 1)
    }

    // MARK: --baseline

    @Test func aBaselineWithInflatedThroughputFailsWithTheRatio() throws {
        let catalogue = Paths.fixtures + "/baseline/work.yaml"
        let old = temporaryPath("old.xml")
        let inflated = temporaryPath("inflated.xml")
        let deflated = temporaryPath("deflated.xml")
        let slowLocks = temporaryPath("slow-locks.xml")
        let partial = temporaryPath("partial.xml")
        let new = temporaryPath("new.xml")
        defer { for path in [old, inflated, deflated, slowLocks, partial, new] { unlink(path) } }
        let first = try Run.harness(["run", "--leak-check", "own", "--junit", old, catalogue])
        #expect(first.exitCode == 0, "\(first.stderr)")
        let text = try String(contentsOfFile: old, encoding: .utf8)
        /// The earlier report with every value of one metric replaced (a machine far faster or slower than any).
        /// (Only the compared metric is changed; the other one is set far on the good side, so noise between two
        /// runs of a busy machine decides nothing.)
        func with(_ metric: String, _ value: String, in text: String = text) throws -> String {
            let pattern = try Regex("\\[\\[PROPERTY\\|\(metric)=\\d+\\]\\]")
            #expect(text.matches(of: pattern).count == 2, "both testcases report \(metric)")
            return text.replacing(pattern, with: "[[PROPERTY|\(metric)=\(value)]]")
        }
        let anyP99 = try with("lock_p99_ns", "1000000000000")
        let anyThroughput = try with("operations_per_second", "1")
        try with("operations_per_second", "1000000000000", in: anyP99).write(toFile: inflated, atomically: true, encoding: .utf8)
        try with("operations_per_second", "1", in: anyP99).write(toFile: deflated, atomically: true, encoding: .utf8)
        try with("lock_p99_ns", "1", in: anyThroughput).write(toFile: slowLocks, atomically: true, encoding: .utf8)

        let slower = try Run.harness(["run", "--leak-check", "own", "--baseline", inflated, "--max-slowdown", "25%", "--junit", new, catalogue])
        #expect(slower.exitCode == 1, "\(slower.stderr)")
        try expectValid(new)
        let report = try read(new)
        #expect(report.cases.count == 2)
        for result in report.cases {
            guard case .failed(let message, let type) = result.status else { Issue.record("\(result.name): \(result.status)"); continue }
            let ratio = try #require(property("baseline.operations_per_second_ratio", result))
            #expect(type == "baseline" && message.contains("operations_per_second") && message.contains("vs 1000000000000") && message.contains("ratio \(ratio) ("), "\(message)")
            #expect(try #require(Double(ratio)) < 0.01)
            #expect(property("baseline", result) == "regressed")
        }
        #expect(report.suites[0].properties.contains { $0.name == "harness.max_slowdown" && $0.value == "25%" })
        #expect(slower.stderr.contains("BASELINE "), "the log names the regressions: \(slower.stderr)")

        // Negative control: against a baseline of 1 operation per second (and 1000 s p99), nothing regressed; the
        // ratios are written.
        let faster = try Run.harness(["run", "--leak-check", "own", "--baseline", deflated, "--junit", new, catalogue])
        #expect(faster.exitCode == 0, "\(faster.stderr)")
        try expectValid(new)
        for result in try read(new).cases {
            #expect(result.status == .passed && property("baseline", result) == "ok")
            #expect(try #require(Double(property("baseline.operations_per_second_ratio", result) ?? "")) > 100)
            #expect(property("baseline.lock_p99_ns_ratio", result) != nil)
        }

        // p99 lock latency: against a baseline of 1 ns, every testcase regressed.
        let locks = try Run.harness(["run", "--leak-check", "own", "--baseline", slowLocks, "--junit", new, catalogue])
        #expect(locks.exitCode == 1, "\(locks.stderr)")
        try expectValid(new)
        for result in try read(new).cases {
            guard case .failed(let message, "baseline") = result.status else { Issue.record("\(result.status)"); continue }
            #expect(message.contains("lock_p99_ns") && message.contains("vs 1 in"), "\(message)")
        }

        // A testcase absent from the baseline is noted, not failed.
        try text.replacingOccurrences(of: "name=\"work[backend=posix]\"", with: "name=\"renamed\"").write(toFile: partial, atomically: true, encoding: .utf8)
        let noted = try Run.harness(["run", "--leak-check", "own", "--baseline", partial, "--max-slowdown", "100000%", "--junit", new, catalogue])
        #expect(noted.exitCode == 0, "\(noted.stderr)")
        let absent = try read(new).cases.filter { property("baseline", $0) == "absent" }
        #expect(absent.map(\.name) == ["work[backend=posix]"] && absent.first?.status == .passed)

        // Bad input: exit 2 before anything runs.
        let missing = try Run.harness(["run", "--baseline", "/nonexistent/old.xml", "--junit", new, catalogue])
        #expect(missing.exitCode == 2 && missing.stderr.contains("/nonexistent/old.xml"), "\(missing.stderr)")
        let lonely = try Run.harness(["run", "--max-slowdown", "10%", "--junit", new, catalogue])
        #expect(lonely.exitCode == 2 && lonely.stderr.contains("--max-slowdown needs --baseline"), "\(lonely.stderr)")
    }

    @Test func p99LockLatencyRegressionsFailToo() {
        let old = TestCaseResult(classname: "lock", name: "a", time: 1, status: .passed, properties: [("operations_per_second", "1000"), ("lock_p99_ns", "1000")])
        let xml = JUnitWriter.render([old], context: ReportContext(hostname: "h", timestamp: "2026-11-29T10:00:00", properties: []))
        guard let baseline = try? JUnitReader.parse(Array(xml.utf8), path: "old.xml") else { Issue.record("unreadable"); return }
        func compared(_ p99: String) -> TestCaseResult {
            let now = TestCaseResult(classname: "lock", name: "a", time: 1, status: .passed, properties: [("operations_per_second", "1000"), ("lock_p99_ns", p99)])
            return Baseline.compare([now], with: baseline, maxSlowdown: 0.25)[0]
        }
        let worse = compared("2000")
        guard case .failed(let message, "baseline") = worse.status else { Issue.record("\(worse.status)"); return }
        #expect(message.contains("lock_p99_ns 2000 vs 1000 in old.xml: ratio 2 "), "\(message)")
        // Negative controls: within the threshold, and better.
        #expect(compared("1240").status == .passed)
        #expect(compared("500").status == .passed)
        #expect(Baseline.parseSlowdown("25%") == 0.25 && Baseline.parseSlowdown("0.1") == 0.1 && Baseline.parseSlowdown("x") == nil)
    }

    @Test func benchBaselinesCompareTheRatioToTheFloor() throws {
        func json(_ ratio: Double, floorMin: Double, newCase: Bool = true) -> Data {
            Data("""
                {"format": 1, "cases": [{"name": "lock-futex", "variants": [
                  {"label": "swift", "role": "library", "min_ns": \(floorMin * ratio), "ratio_to_floor": \(ratio)},
                  {"label": "c", "role": "floor", "min_ns": \(floorMin), "ratio_to_floor": 1.0},
                  {"label": "qt", "role": "qt", "unavailable": "not built", "min_ns": null, "ratio_to_floor": null}]},
                  {"name": "\(newCase ? "new-case" : "lock-robust")", "variants": []}]}
                """.utf8)
        }
        // A machine twice as slow (floor and library alike) is no regression: the ratio to the floor is the same.
        let slowerMachine = try BenchBaseline.compare(new: json(2.0, floorMin: 40), newPath: "new", old: json(2.0, floorMin: 20, newCase: false), oldPath: "old", maxSlowdown: 0.25)
        #expect(slowerMachine.comparisons.count == 1 && slowerMachine.regressions.isEmpty)
        #expect(slowerMachine.comparisons[0].metric == "ratio_to_floor")
        #expect(slowerMachine.notes.contains { $0.contains("new-case: absent from the baseline") })
        #expect(slowerMachine.notes.contains { $0.contains("qt: no measurement") })
        // Negative control: the library's ratio grew from 2 to 3: regressed, ×1.5.
        let regressed = try BenchBaseline.compare(new: json(3.0, floorMin: 20), newPath: "new", old: json(2.0, floorMin: 20), oldPath: "old", maxSlowdown: 0.25)
        #expect(regressed.regressions.map(\.variant) == ["swift"] && regressed.regressions[0].ratio == 1.5)
        #expect(BenchBaseline.lines(regressed, maxSlowdown: 0.25)[0].contains("×1.500  REGRESSED"))
        #expect(throws: BenchBaseline.FormatError.self) { try BenchBaseline.compare(new: Data("[]".utf8), newPath: "n", old: json(1, floorMin: 1), oldPath: "o", maxSlowdown: 0) }
    }
}
