import Foundation
import JUnit
import ScenarioKit
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// `shm-harness run`: loads every scenario first (any problem: exit 2, nothing runs), selects by tag, glob and
/// shard, runs the testcases (in parallel with `jobs`), shows progress, writes the JUnit report.
public struct Runner {
    public struct Options: Sendable {
        public var paths: [String]
        public var junitPath: String
        public var tags: [String]
        public var filters: [String]
        public var jobs: Int
        public var shard: (index: Int, count: Int)?
        public var harnessVersion: String
        /// Compare the whole machine's IPC objects around each testcase (only with `jobs` 1), not just the run's own.
        public var machineLeakCheck: Bool
        /// Run each testcase in its own process, in private IPC and mount namespaces (root only).
        public var isolate: Bool
        /// A testcase this build cannot run (no C worker, say) is an error, not a skip.
        public var strict: Bool
        /// `--repeat N`: each testcase runs N times (with `untilFailure`: at most N rounds; nil: no limit).
        public var repeatCount: Int? = 1
        /// `--until-failure`: no run starts after the first failed or errored one.
        public var untilFailure = false
        /// `--flaky-ok`: a flaky testcase passes (marked `flaky=true`) instead of failing.
        public var flakyOK = false
        /// The run's seed (`--seed`): every random choice of chaos and start delays.
        public var seed: UInt64 = 0
        /// `--jitter D`: every worker starts after a random delay of at most D.
        public var jitter: Duration? = nil

        public init(paths: [String], junitPath: String, tags: [String], filters: [String], jobs: Int, shard: (index: Int, count: Int)?, harnessVersion: String, machineLeakCheck: Bool = true, isolate: Bool = false, strict: Bool = false) {
            self.strict = strict
            self.machineLeakCheck = machineLeakCheck
            self.isolate = isolate
            self.paths = paths
            self.junitPath = junitPath
            self.tags = tags
            self.filters = filters
            self.jobs = jobs
            self.shard = shard
            self.harnessVersion = harnessVersion
        }
    }

    /// Every testcase of every file under `paths`, or all the problems found.
    public static func load(_ paths: [String]) throws(ScenarioErrors) -> [Scenario] {
        var scenarios: [Scenario] = []
        var errors: [ScenarioError] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let root = scenariosRoot(for: path, isDirectory: exists && isDirectory.boolValue)
            do {
                for file in try ScenarioLoader.files(at: path) {
                    do { scenarios += try ScenarioLoader.load(file: file, root: root) } catch { errors += error.errors }
                }
            } catch {
                errors += error.errors
            }
        }
        var seen: [String: Scenario] = [:]
        for scenario in scenarios {
            if let first = seen[scenario.identifier] {
                errors.append(ScenarioError(scenario.location, "testcase \(scenario.identifier) is also defined by \(first.file); JUnit consumers drop duplicates"))
            }
            seen[scenario.identifier] = scenario
        }
        guard errors.isEmpty else { throw ScenarioErrors(errors) }
        return scenarios
    }

    /// The root that classnames are relative to: the nearest enclosing folder named `scenarios` (so that
    /// `run scenarios/lock` still reports classname `lock`); otherwise a given folder itself, or a given file's
    /// folder's parent.
    static func scenariosRoot(for path: String, isDirectory: Bool) -> String {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        if !isDirectory { url.deleteLastPathComponent() }
        var probe = url
        while probe.path != "/" {
            if probe.lastPathComponent == "scenarios" { return probe.path }
            probe.deleteLastPathComponent()
        }
        return isDirectory ? url.path : url.deletingLastPathComponent().path
    }

    /// Tag, glob and shard selection.
    public static func select(_ scenarios: [Scenario], tags: [String], filters: [String], shard: (index: Int, count: Int)?) -> [Scenario] {
        scenarios.filter { scenario in
            if !tags.isEmpty && !tags.contains(where: scenario.tags.contains) { return false }
            if !filters.isEmpty && !filters.contains(where: { glob in
                fnmatch(glob, scenario.identifier, 0) == 0 || fnmatch(glob, scenario.testName, 0) == 0 || fnmatch(glob, scenario.file, 0) == 0
            }) { return false }
            if let shard { return Int(stableHash(scenario.identifier) % UInt64(shard.count)) == shard.index - 1 }
            return true
        }
    }

    /// FNV-1a: the same testcase lands in the same shard on every machine.
    static func stableHash(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    /// Runs the selected testcases; returns the results in the scenarios' order and notes for the report's
    /// properties (how testcases were isolated).
    public static func run(_ scenarios: [Scenario], options: Options, progress: ProgressReporter) throws -> (results: [TestCaseResult], notes: [(name: String, value: String)]) {
        // An empty shard: nothing to run (and nothing to divide the runs by).
        guard !scenarios.isEmpty else { return ([], []) }
        prepareProcess()
        let runToken = String(UInt32.random(in: .min ... .max), radix: 16)
        // What earlier runs that died left behind goes first (only what their journals name).
        if let reaper = try? Reaper(report: { event in
            if event.isRemoval { progress.say("shm-harness: a previous run died: \(event)\n") }
        }) {
            reaper.cleanStaleJournals()
        }
        let journal = JournalWriter.start(token: runToken)
        defer { journal?.finish(token: runToken) }
        let environment = try RunEnvironment.current(
            jobs: options.jobs, machineLeakCheck: options.machineLeakCheck, strict: options.strict, token: runToken, journal: journal)
        defer { RunEnvironment.removeTree(environment.workDirectory) }
        var isolation = "off"
        var isolated = false
        if options.isolate {
            switch Isolation.probe(harness: environment.harnessPath, swiftWorker: environment.swiftWorkerPath) {
            case nil:
                isolated = true
                isolation = "namespaces (private IPC namespace and /dev/shm per testcase)"
            case let reason?:
                isolation = "unavailable: \(reason); fell back to the run journal and unique keys"
                progress.say("shm-harness: isolation unavailable (\(reason)); running without namespaces\n")
            }
        }
        // Work item i is repetition i / count + 1 of testcase i % count: round after round.
        let repeating = options.repeatCount != 1 || options.untilFailure
        let total = options.repeatCount.map { scenarios.count * max(1, $0) }
        let runs = RunBox()
        let next = Counter()
        progress.start(total: total ?? 0, repetitions: repeating ? (options.repeatCount ?? 0) : 1)
        let jobs = max(1, min(options.jobs, total ?? options.jobs))
        let isolatedRun = isolated
        // A repeated run stopped with Ctrl-C (SIGINT) starts no new run and still writes its report; a second
        // Ctrl-C ends it at once.
        var interruption: (any DispatchSourceSignal)?
        if repeating {
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
            source.setEventHandler {
                if runs.interrupt() {
                    progress.say("\nshm-harness: interrupted: no new run starts; the report is written when the running ones end (Ctrl-C again to stop now)\n")
                } else {
                    signal(SIGINT, SIG_DFL)
                    kill(getpid(), SIGINT)
                }
            }
            source.resume()
            interruption = source
        }
        defer {
            if let interruption {
                interruption.cancel()
                signal(SIGINT, SIG_DFL)
            }
        }
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let index = next.increment()
                guard index < (total ?? Int.max), !(options.untilFailure && runs.failed), !runs.interrupted else { return }
                let scenario = scenarios[index % scenarios.count]
                let repetition = index / scenarios.count + 1
                // Without a limit, testcases that all skip would repeat forever.
                if total == nil && repetition > 1 && runs.everyTestcaseSkipped(scenarios.count) { return }
                let runSeed = ChaosSeed.repetition(repetition, of: options.seed)
                let seed = ChaosSeed.testcase(scenario.testName, runSeed: runSeed)
                progress.began(scenario.identifier)
                let token = "\(runToken)-\(index)"
                var result: TestCaseResult
                if isolatedRun {
                    result = Isolation.runInChild(
                        scenario, environment: environment, token: token, machineLeakCheck: options.machineLeakCheck && options.jobs == 1,
                        journal: journal, seed: seed, jitter: options.jitter)
                } else {
                    let run = TestcaseRun(scenario: scenario, environment: environment, token: token, journal: journal)
                    run.seed = seed
                    run.jitter = options.jitter
                    result = run.run()
                }
                if ["failed", "errored"].contains(result.status.word) {
                    let command = Repetition.rerunCommand(file: scenario.file, testName: scenario.testName, runSeed: runSeed, jitter: options.jitter)
                    result.properties.append(("rerun", command))
                    result.detail += (result.detail.isEmpty ? "" : "\n") + "re-run: " + command
                }
                runs.add(index % scenarios.count, Repetition.Run(repetition: repetition, runSeed: runSeed, result: result))
                progress.finished(result, repetition: repeating ? repetition : nil)
            }
        }
        let results: [TestCaseResult] = runs.byTestcase(scenarios.count).compactMap { list in
            guard !list.isEmpty else { return nil }
            return repeating ? Repetition.fold(list, flakyOK: options.flakyOK) : list[0].result
        }
        var notes = [("harness.isolation", isolation), ("harness.seed", "\(options.seed)")]
        if repeating {
            notes.append(("harness.repeat", options.repeatCount.map(String.init) ?? "unbounded"))
            if options.untilFailure { notes.append(("harness.until_failure", "true")) }
            if options.flakyOK { notes.append(("harness.flaky_ok", "true")) }
        }
        if let jitter = options.jitter { notes.append(("harness.jitter", DurationText.format(jitter))) }
        if runs.interrupted { notes.append(("harness.interrupted", "true")) }
        if let shard = options.shard { notes.append(("harness.shard", "\(shard.index)/\(shard.count)")) }
        return (results, notes)
    }

    /// One testcase in this very process (the isolated child's side of `run --isolate`).
    /// `onWorkersEnded` hears the verdict as it stands before teardown (see ``TestcaseRun``).
    public static func runHere(
        _ scenario: Scenario, token: String, machineLeakCheck: Bool, strict: Bool = false, seed: UInt64 = 0, jitter: Duration? = nil,
        onWorkersEnded: ((TestCaseResult) -> Void)? = nil
    ) throws -> TestCaseResult {
        prepareProcess()
        let environment = try RunEnvironment.current(jobs: 1, machineLeakCheck: machineLeakCheck, strict: strict, token: "one-" + token)
        defer { RunEnvironment.removeTree(environment.workDirectory) }
        let run = TestcaseRun(scenario: scenario, environment: environment, token: token, journal: JournalWriter.inherited)
        run.onWorkersEnded = onWorkersEnded
        run.seed = seed
        run.jitter = jitter
        return run.run()
    }

    /// Three pipes per worker: hundreds of workers need more descriptors than the usual soft limit of 1024.
    /// A worker that dies while the runner writes to its stdin must not take the runner with it (EPIPE
    /// instead of SIGPIPE); workers get the default action back at spawn.
    static func prepareProcess() {
        signal(SIGPIPE, SIG_IGN)
        raiseDescriptorLimit()
    }

    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(RLIMIT_NOFILE_VALUE, &limit)
    }

    /// Writes the report atomically next to its final place.
    public static func writeReport(_ results: [TestCaseResult], to path: String, version: String, notes: [(name: String, value: String)]) throws {
        let properties = MachineProperties.collect(version: version) + notes
        let context = ReportContext(hostname: MachineProperties.hostname(), timestamp: MachineProperties.timestamp(), properties: properties)
        let xml = JUnitWriter.render(results, context: context)
        // The folder must exist (`run` checks it before anything runs): a run creates no folder outside its own.
        try ReportFile.write(xml, to: path)
    }
}

#if canImport(Glibc)
let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#endif

final class ResultBox: @unchecked Sendable {
    private var results: [TestCaseResult?]
    private let lock = NSLock()
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ result: TestCaseResult) { lock.withLock { results[index] = result } }
    func all() -> [TestCaseResult] { lock.withLock { results.compactMap { $0 } } }
}

/// Every run of every testcase, as they finish.
final class RunBox: @unchecked Sendable {
    private var runs: [(Int, Repetition.Run)] = []
    private var sawFailure = false
    private let lock = NSLock()
    func add(_ testcase: Int, _ run: Repetition.Run) {
        lock.withLock {
            runs.append((testcase, run))
            if ["failed", "errored"].contains(run.result.status.word) { sawFailure = true }
        }
    }
    var failed: Bool { lock.withLock { sawFailure } }
    private var stopped = false
    /// Ctrl-C: true the first time.
    func interrupt() -> Bool { lock.withLock { defer { stopped = true }; return !stopped } }
    var interrupted: Bool { lock.withLock { stopped } }
    /// Whether each testcase has run and skipped.
    func everyTestcaseSkipped(_ count: Int) -> Bool {
        lock.withLock {
            var skipped = Set<Int>()
            for (index, run) in runs where run.result.status.word == "skipped" { skipped.insert(index) }
            return skipped.count == count && !runs.contains { $0.1.result.status.word != "skipped" }
        }
    }
    /// Each testcase's runs, by repetition.
    func byTestcase(_ count: Int) -> [[Repetition.Run]] {
        lock.withLock {
            var out = Array(repeating: [Repetition.Run](), count: count)
            for (index, run) in runs { out[index].append(run) }
            return out.map { $0.sorted { $0.repetition < $1.repetition } }
        }
    }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int { lock.withLock { defer { value += 1 }; return value } }
}
