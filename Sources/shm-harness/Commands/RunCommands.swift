import ArgumentParser
import Foundation
import Harness
import JUnit
import ScenarioKit
import WorkerKit

#if canImport(Glibc)
import Glibc
#endif

/// `--shard K/N`.
struct Shard: ExpressibleByArgument {
    var index: Int
    var count: Int

    init?(argument: String) {
        let parts = argument.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, (1...n).contains(k) else { return nil }
        index = k
        count = n
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run scenario files and write a JUnit XML report.",
        discussion: """
            Loads every scenario first: a file that does not parse or breaks the contract stops the run with exit 2 \
            and FILE:LINE:COLUMN messages before anything runs. Exit 0 when every testcase passed or was skipped, \
            1 when one failed or erred, 2 when nothing is selected (no scenario under PATH, or --tag/--filter match \
            none; an empty --shard is fine when the unsharded selection is not empty).
            Strict mode (--strict; the default when the environment has CI=true): a testcase this build cannot run \
            (impl: c without the C worker) is an <error>, not a <skipped>. What the machine lacks (root, a second \
            user, memfd...) is skipped with its reason in either mode.
            Regression runs: --repeat N runs each testcase N times and reports it passed, failed or flaky (both \
            seen; flaky fails the run unless --flaky-ok); --until-failure stops at the first failure; --seed S \
            replays every random choice (chaos kills, start delays, --jitter); --baseline OLD.xml fails a \
            testcase whose throughput or p99 lock latency regressed beyond --max-slowdown. Ctrl-C during a \
            repeated run writes the report and exits 130 (unless a run failed).
            """
    )

    @Argument(help: "Scenario files or folders (default: scenarios).")
    var paths: [String] = []

    @Option(help: "Where to write the JUnit XML report.")
    var junit = "shm-harness-junit.xml"

    @Option(help: "Run only scenarios with this tag (repeatable: any of them).")
    var tag: [String] = []

    @Option(help: "Run only testcases whose classname.name, name or file matches this glob (repeatable).")
    var filter: [String] = []

    @Option(parsing: .unconditional, help: "How many testcases run at once (1 to 1024).", transform: { try NumberArgument.count($0, range: 1...1024) })
    var jobs = 1

    @Option(help: "Run the K-th of N stable slices of the testcases (e.g. 2/4), for CI matrices.")
    var shard: Shard?

    @Option(help: "What the leak check compares: machine (every IPC object, with --jobs 1) or own (the run's objects only).")
    var leakCheck: LeakScope = .machine

    @Flag(inversion: .prefixedNo, help: "Run each testcase in private IPC and mount namespaces (default: on when root).")
    var isolate: Bool?

    @Flag(inversion: .prefixedNo, help: "A testcase this build cannot run (a missing worker) is an error, not a skip (default: on when CI=true).")
    var strict: Bool?

    @Option(name: .customLong("repeat"), help: "Run each testcase N times; a testcase that both passed and failed is flaky (with --until-failure: at most N rounds).", transform: { try NumberArgument.count($0, range: 1...1_000_000) })
    var repeatCount: Int?

    @Flag(help: "Start no run after the first failed or errored one (no limit without --repeat).")
    var untilFailure = false

    @Flag(help: "A flaky testcase (passed and failed over the --repeat runs) passes, marked flaky=true, instead of failing the run.")
    var flakyOk = false

    @Option(help: "The seed of every random choice (chaos kills, start delays); printed and written into the report (default: a fresh one).", transform: { text in
        guard let value = UInt64(text) else { throw ValidationError("--seed must be a whole number from 0 to \(UInt64.max), not '\(text)'") }
        return value
    })
    var seed: UInt64?

    @Option(help: "Start every worker after a random delay of at most this (e.g. 20ms), to shake out ordering assumptions.", transform: { text in
        guard let value = DurationText.parse(text) else { throw ValidationError("--jitter must be a duration such as 20ms or 1s, not '\(text)'") }
        return value
    })
    var jitter: Duration?

    @Option(help: "Compare each testcase's throughput and p99 lock latency with the same testcase of this earlier report.")
    var baseline: String?

    @Option(help: "With --baseline: the slowdown that fails a testcase (default 25%).")
    var maxSlowdown: String?

    /// Strict unless told otherwise, when the environment says CI (`CI=true`, as GitLab, GitHub and most CI set).
    static var strictByDefault: Bool { ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true" }

    enum LeakScope: String, ExpressibleByArgument, CaseIterable { case machine, own }

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let problem = RunArgumentChecks.reportProblem(junit) { throw ValidationError(problem) }
        for glob in filter {
            if let problem = RunArgumentChecks.globProblem(glob) { throw ValidationError("--filter '\(glob)' is not a valid glob: \(problem)") }
        }
        if let maxSlowdown {
            if baseline == nil { throw ValidationError("--max-slowdown needs --baseline OLD.xml") }
            if Baseline.parseSlowdown(maxSlowdown) == nil { throw ValidationError("--max-slowdown must be a percentage such as 25%, not '\(maxSlowdown)'") }
        }
        if flakyOk && repeatCount == nil && !untilFailure { throw ValidationError("--flaky-ok needs --repeat N (a single run cannot be flaky)") }
        if let jitter, jitter > .seconds(60) { throw ValidationError("--jitter \(DurationText.format(jitter)) is longer than 60s") }
    }

    func run() throws {
        let roots = paths.isEmpty ? ["scenarios"] : paths
        let scenarios: [Scenario]
        do {
            scenarios = try Runner.load(roots)
        } catch {
            throw CommandFailure(message: "unusable scenarios, nothing was run:\n\(error)", exitCode: 2)
        }
        let selected = Runner.select(scenarios, tags: tag, filters: filter, shard: shard.map { ($0.index, $0.count) })
        if selected.isEmpty {
            let unsharded = Runner.select(scenarios, tags: tag, filters: filter, shard: nil)
            if let shard, !unsharded.isEmpty {
                // Small catalogues over many shards: an empty slice is normal, and says so.
                writeStandardError("shm-harness: shard \(shard.index)/\(shard.count) is empty: none of the \(unsharded.count) selected testcases falls in it\n")
            } else {
                throw CommandFailure(message: Self.nothingSelected(roots: roots, scenarios: scenarios, tags: tag, filters: filter), exitCode: 2)
            }
        }
        // Read before anything runs: a bad baseline is exit 2 with nothing run.
        let baselineReport = try baseline.map { try ReportCommand.readReports([$0])[0] }
        let progress = ProgressReporter()
        var options = Runner.Options(
            paths: roots, junitPath: junit, tags: tag, filters: filter, jobs: jobs,
            shard: shard.map { ($0.index, $0.count) }, harnessVersion: ShmHarness.version,
            machineLeakCheck: leakCheck == .machine, isolate: isolate ?? (geteuid() == 0),
            strict: strict ?? Self.strictByDefault)
        options.repeatCount = untilFailure ? repeatCount : (repeatCount ?? 1)
        options.untilFailure = untilFailure
        options.flakyOK = flakyOk
        options.seed = seed ?? ChaosSeed.fresh()
        options.jitter = jitter
        progress.say("shm-harness: seed \(options.seed) (replay with --seed \(options.seed))\n")
        var (results, notes) = try Runner.run(selected, options: options, progress: progress)
        if let baselineReport {
            let slowdown = maxSlowdown.flatMap(Baseline.parseSlowdown) ?? 0.25
            results = Baseline.compare(results, with: baselineReport, maxSlowdown: slowdown)
            notes += [("harness.baseline", baselineReport.path), ("harness.max_slowdown", "\(Int((slowdown * 100).rounded()))%")]
            for result in results {
                if case .failed(let message, "baseline") = result.status { progress.say("BASELINE \(result.classname).\(result.name): \(message)\n") }
            }
        }
        let scope = leakCheck == .machine && jobs == 1 ? "machine" : "own"
        try Runner.writeReport(results, to: junit, version: ShmHarness.version, notes: notes + [("harness.leak_check", scope)])
        progress.summary(reportPath: junit)
        let bad = results.contains {
            switch $0.status {
            case .failed, .errored: true
            default: false
            }
        }
        if bad { throw ExitCode(1) }
        if notes.contains(where: { $0.name == "harness.interrupted" }) { throw ExitCode(130) }
    }

    /// Why a run selected nothing, for its exit-2 message.
    static func nothingSelected(roots: [String], scenarios: [Scenario], tags: [String], filters: [String]) -> String {
        if scenarios.isEmpty {
            return "no testcase selected: no scenario file (*.yaml, *.yml) under \(roots.joined(separator: ", ")); nothing was run"
        }
        var why: [String] = []
        if !tags.isEmpty { why.append("--tag " + tags.joined(separator: ", --tag ")) }
        if !filters.isEmpty { why.append("--filter " + filters.map { "'\($0)'" }.joined(separator: ", --filter ")) }
        return "no testcase selected: \(why.joined(separator: " and ")) matched none of the \(scenarios.count) testcases under \(roots.joined(separator: ", ")) (see `shm-harness list`); nothing was run"
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check scenario files against the contract without running them.")

    @Argument(help: "Scenario files or folders.")
    var paths: [String] = []

    func run() throws {
        let roots = paths.isEmpty ? ["scenarios"] : paths
        let scenarios: [Scenario]
        do { scenarios = try Runner.load(roots) } catch { throw CommandFailure(message: "\(error)", exitCode: 2) }
        // Checking nothing is not a pass: a mistyped path in CI must not go green.
        if scenarios.isEmpty { throw CommandFailure(message: "validate: no scenario file (*.yaml, *.yml) under \(roots.joined(separator: ", "))", exitCode: 2) }
        print("ok: \(Set(scenarios.map(\.file)).count) file(s), \(scenarios.count) testcase(s)")
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the testcases that scenario files define.")

    @Argument(help: "Scenario files or folders.")
    var paths: [String] = []

    @Option(help: "Only these tags.") var tag: [String] = []
    @Option(help: "Only testcases matching this glob.") var filter: [String] = []
    @Flag(help: "Print the catalogue as Markdown: one table per folder with each file, its testcases and its summary (the README's \"Catalogue\").")
    var markdown = false

    func validate() throws {
        for glob in filter {
            if let problem = RunArgumentChecks.globProblem(glob) { throw ValidationError("--filter '\(glob)' is not a valid glob: \(problem)") }
        }
    }

    func run() throws {
        let roots = paths.isEmpty ? ["scenarios"] : paths
        let loaded: [Scenario]
        do { loaded = try Runner.load(roots) } catch { throw CommandFailure(message: "\(error)", exitCode: 2) }
        let scenarios = Runner.select(loaded, tags: tag, filters: filter, shard: nil)
        if scenarios.isEmpty {
            let why = RunCommand.nothingSelected(roots: roots, scenarios: loaded, tags: tag, filters: filter)
            throw CommandFailure(message: why.replacingOccurrences(of: "; nothing was run", with: ""), exitCode: 2)
        }
        if markdown {
            print(Catalogue.markdown(scenarios, base: FileManager.default.currentDirectoryPath), terminator: "")
            return
        }
        for s in scenarios {
            let workers = s.workers.reduce(0) { $0 + $1.count }
            var line = "\(s.identifier)  (\(workers) worker\(workers == 1 ? "" : "s")"
            if !s.tags.isEmpty { line += "; tags: \(s.tags.joined(separator: ", "))" }
            line += ")"
            if !s.summary.isEmpty { line += "\n    \(s.summary)" }
            print(line)
        }
    }
}

/// The Swift worker, re-executed by the runner: `shm-harness worker PLAN [--user U]`.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Execute one worker's plan (started by `run`).", shouldDisplay: false)

    @Argument(help: "The plan file, or with --exec the program and its arguments.")
    var arguments: [String] = []

    @Option(help: "Drop to this user (name or uid, its primary group) before the first step.")
    var user: String?

    @Flag(help: "Only check that dropping to --user works, then exit 0.")
    var probe = false

    @Flag(help: "After dropping to --user, execute the program given after --.")
    var exec = false

    /// The same command line as the lean worker `shm-harness-worker` (WorkerKit's WorkerCommandLine).
    func run() throws {
        var line: [String] = user.map { ["--user", $0] } ?? []
        if probe { line.append("--probe") }
        line += exec ? ["--exec", "--"] + arguments : arguments
        throw ExitCode(WorkerCommandLine.main(line))
    }
}

/// One testcase in this process (isolated by the runner): `shm-harness run-one --file F --classname C --testcase N`.
struct RunOneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-one", abstract: "Run one testcase and print its result (started by `run --isolate`).", shouldDisplay: false)

    @Option var file: String?
    @Option var classname: String?
    @Option var testcase: String?
    @Option var token: String?
    @Option var leakCheck: RunCommand.LeakScope = .own
    @Option var seed: UInt64 = 0
    @Option var jitter: String?
    @Flag(inversion: .prefixedNo) var strict = false
    @Flag(help: "Only report whether isolation works here.") var probe = false

    func run() throws {
        _ = WorkerKit.setParentDeathSignal()
        if let failure = Isolation.failure() {
            throw CommandFailure(message: "isolation failed: \(failure)", exitCode: 4)
        }
        if probe {
            guard Isolation.isIsolated else { throw CommandFailure(message: "isolation was not applied (set SHM_HARNESS_ISOLATE=1)", exitCode: 4) }
            return
        }
        guard let file, let classname, let testcase, let token else {
            throw CommandFailure(message: "run-one needs --file, --classname, --testcase and --token", exitCode: 2)
        }
        let scenarios: [Scenario]
        do { scenarios = try ScenarioLoader.load(file: file) } catch { throw CommandFailure(message: "\(error)", exitCode: 2) }
        guard var scenario = scenarios.first(where: { $0.testName == testcase }) else {
            throw CommandFailure(message: "\(file) has no testcase \(testcase)", exitCode: 2)
        }
        scenario.classname = classname
        // The verdict as it stands before teardown: the parent reports it if this process hangs after that.
        let result = try Runner.runHere(scenario, token: token, machineLeakCheck: leakCheck == .machine, strict: strict, seed: seed, jitter: jitter.flatMap(DurationText.parse)) { partial in
            if let data = try? JSONEncoder().encode(partial) {
                print("partial " + String(decoding: data, as: UTF8.self))
                fflush(nil)
            }
        }
        let data = try JSONEncoder().encode(result)
        print("result " + String(decoding: data, as: UTF8.self))
    }
}
