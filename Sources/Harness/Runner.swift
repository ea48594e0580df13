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
        let results = ResultBox(count: scenarios.count)
        let next = Counter()
        progress.start(total: scenarios.count)
        let jobs = max(1, min(options.jobs, scenarios.count))
        let isolatedRun = isolated
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let index = next.increment()
                guard index < scenarios.count else { return }
                let scenario = scenarios[index]
                progress.began(scenario.identifier)
                let token = "\(runToken)-\(index)"
                let result = isolatedRun
                    ? Isolation.runInChild(scenario, environment: environment, token: token, machineLeakCheck: options.machineLeakCheck && options.jobs == 1, journal: journal)
                    : TestcaseRun(scenario: scenario, environment: environment, token: token, journal: journal).run()
                results.set(index, result)
                progress.finished(result)
            }
        }
        var notes = [("harness.isolation", isolation)]
        if let shard = options.shard { notes.append(("harness.shard", "\(shard.index)/\(shard.count)")) }
        return (results.all(), notes)
    }

    /// One testcase in this very process (the isolated child's side of `run --isolate`).
    /// `onWorkersEnded` hears the verdict as it stands before teardown (see ``TestcaseRun``).
    public static func runHere(
        _ scenario: Scenario, token: String, machineLeakCheck: Bool, strict: Bool = false, onWorkersEnded: ((TestCaseResult) -> Void)? = nil
    ) throws -> TestCaseResult {
        prepareProcess()
        let environment = try RunEnvironment.current(jobs: 1, machineLeakCheck: machineLeakCheck, strict: strict, token: "one-" + token)
        defer { RunEnvironment.removeTree(environment.workDirectory) }
        let run = TestcaseRun(scenario: scenario, environment: environment, token: token, journal: JournalWriter.inherited)
        run.onWorkersEnded = onWorkersEnded
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

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int { lock.withLock { defer { value += 1 }; return value } }
}
