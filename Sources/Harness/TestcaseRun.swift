import CShmShim
import Foundation
import JUnit
import ScenarioKit
import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs one testcase: requirements, setup, workers, barriers, timeout, expectations, teardown, leak check.
final class TestcaseRun {
    struct Worker {
        let group: String
        let index: Int
        let spec: WorkerSpec
        let process: SpawnedProcess
        var stdout = LineReader()
        var stderr = LineReader()
        var tail: [String] = []
        var result: WorkerProcess.Result?
        var barriersNamed: Set<String>
        var waitingAt: String?
        /// The scenario line of the step the worker said it was at (`at LINE`, when asked before a kill).
        var atLine: Int?
        var label: String { "\(group)/\(index)" }

        /// Keeps the last 20 lines of the worker's output for the report.
        mutating func keep(_ lines: [String]) { tail = Array((tail + lines).suffix(20)) }

        /// Reads what stderr has now into the tail.
        mutating func drainStandardError() { keep(stderr.read(process.stderrFD)) }
    }

    let scenario: Scenario
    let environment: RunEnvironment
    let token: String
    var workers: [Worker] = []
    var problems: [(kind: Kind, message: String)] = []
    /// The resources whose paths this run named.
    private var namedFiles: [Plan.Resource] = []

    enum Kind { case failure, error }

    let journal: JournalWriter?
    /// Told the verdict as it stands once the workers have ended, before teardown and the leak check (an
    /// isolated child prints it, so that its parent can still report it if the child hangs after that).
    var onWorkersEnded: ((TestCaseResult) -> Void)?
    /// The testcase's seed: every random choice of chaos and start delays (see Chaos.swift).
    var seed: UInt64 = 0
    /// `run --jitter`: a start delay of at most this for every worker.
    var jitter: Duration?
    lazy var chaos = ChaosState(plan: ChaosPlan(scenario: scenario, seed: seed, jitter: jitter))

    init(scenario: Scenario, environment: RunEnvironment, token: String, journal: JournalWriter?) {
        self.journal = journal
        self.scenario = scenario
        self.environment = environment
        self.token = token
    }

    func run() -> TestCaseResult {
        let start = Date()
        var result = execute()
        result.time = Date().timeIntervalSince(start)
        return result
    }

    private func base(_ status: TestCaseResult.Status, detail: String = "") -> TestCaseResult {
        TestCaseResult(classname: scenario.classname, name: scenario.testName, time: 0, status: status, detail: detail, file: scenario.file)
    }

    private func execute() -> TestCaseResult {
        if let unmet = environment.requirements.whyNot(scenario) {
            if unmet.missingPiece && environment.strict {
                return base(.errored(
                    message: unmet.reason + " (strict mode: a testcase this build cannot run is an error; --no-strict skips it)",
                    type: "missing-worker"))
            }
            return base(.skipped(message: unmet.reason))
        }
        if let limits = scenario.limits {
            switch Self.applyLimits(limits) {
            case .applied: break
            case .unavailable(let reason): return base(.skipped(message: reason))
            case .failed(let message): return base(.errored(message: message, type: "limits"))
            }
        }

        let snapshotBefore = environment.checkGlobalLeaks ? IPCSnapshot.take() : nil
        let planDirectory = environment.workDirectory + "/\(token)"
        mkdir(planDirectory, 0o711)
        defer { RunEnvironment.removeTree(planDirectory) }
        var resources = planResources(planDirectory: planDirectory)
        namedFiles = resources
        journal?.record(resources)
        defer { removeFiles() }
        // memfds are made here and handed to the workers by inheritance, at the same descriptor number.
        var setupHandles: [ResourceHandle] = []
        for (index, resource) in resources.enumerated() {
            if resource.kind == .memfd && scenario.resource(resource.id)?.share != .pass {
                do {
                    let memfd = try MemFD.create(name: "shm-harness-\(resource.id)", size: resource.size ?? 0)
                    resources[index].fd = memfd.descriptor?.rawValue
                    setupHandles.append(ResourceHandle.runnersMemFD(resources[index], memfd: memfd))
                } catch {
                    return base(.errored(message: "could not make memfd \(resource.id): \(error)", type: "setup"))
                }
            } else {
                setupHandles.append(ResourceHandle.make(resource))
            }
        }
        var ownKeys: [NativeIPCKey] = resources.compactMap { $0.key.flatMap { NativeIPCKey(string: $0) } }
        ownKeys += ownKeys.map { $0.lockSemaphoreKey() }

        // Setup runs here, in the runner; it stays attached to what it made until the scenario ends.
        let setup = StepExecutor(handles: setupHandles) { (name: String) throws(StepFailure) in
            throw StepFailure(line: 0, step: "barrier", error: "unsupported", message: "setup cannot wait at barrier \(name)", errno: nil)
        }
        var ftokKeys = Set<Int32>()
        do {
            try setup.run(scenario.setup)
            try sealMemFDs(setup)
        } catch {
            setup.closeAll()
            return finish(.errored(message: "setup failed at \(scenario.file):\(error.line): \(error.error)", type: "setup"),
                          detail: error.description, setup: nil, ownKeys: ownKeys, ftokKeys: ftokKeys, snapshot: snapshotBefore)
        }
        ftokKeys = Set(ownKeys.compactMap { IPCSnapshot.ftokKey($0) })

        do {
            try spawnWorkers(resources: resources, planDirectory: planDirectory)
        } catch {
            problems.append((.error, "could not start the workers: \(error)"))
        }
        superviseWorkers()
        if let onWorkersEnded {
            var partial = base(verdict(), detail: problems.map(\.message).joined(separator: "\n"))
            partial.output = workersOutput()
            onWorkersEnded(partial)
        }
        ftokKeys.formUnion(ownKeys.compactMap { IPCSnapshot.ftokKey($0) })
        checkMemory(setup: setup, resources: resources)
        checkOutcomes()
        return finish(verdict(), detail: problems.map(\.message).joined(separator: "\n"), setup: setup, ownKeys: ownKeys, ftokKeys: ftokKeys, snapshot: snapshotBefore)
    }

    private func verdict() -> TestCaseResult.Status {
        if let error = problems.first(where: { $0.kind == .error }) {
            return .errored(message: error.message, type: "error")
        } else if let failure = problems.first {
            return .failed(message: failure.message, type: "expectation")
        }
        return .passed
    }

    /// Whether every worker has ended: the runner is then the only user of the run's objects (their keys and
    /// paths are unique to the run), and its teardown takes no locks (one a dead worker kept would stall it).
    private var everyWorkerEnded: Bool { workers.allSatisfy { $0.process.status != nil } }

    private func workersOutput() -> String {
        workers.map { w in
            (["--- \(w.label) (\(w.process.status.map(Self.describe) ?? "running"))"] + w.tail).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Teardown (detach what setup made), leak check, output and metrics.
    private func finish(
        _ status: TestCaseResult.Status, detail: String, setup: StepExecutor?, ownKeys: [NativeIPCKey], ftokKeys: Set<Int32>,
        snapshot: IPCSnapshot?
    ) -> TestCaseResult {
        setup?.closeAll(takingLocks: !everyWorkerEnded)
        removeFiles()
        var status = status
        var detail = detail
        if !scenario.expect.checkLeaks { removePOSIXLeftovers(of: ownKeys) }
        if scenario.expect.checkLeaks {
            // One look at the machine for the three questions (each look lists /dev/shm and the temp folder).
            let now = IPCSnapshot.take()
            var leaked = IPCSnapshot.traces(of: ownKeys, ftokKeys: ftokKeys, snapshot: now) + now.objects.filter { $0.contains(token) }
            if let snapshot { leaked += now.added(since: snapshot) }
            leaked = Array(Set(leaked)).sorted()
            if !leaked.isEmpty {
                let message = "leaks: none: left behind: " + leaked.joined(separator: ", ")
                detail += (detail.isEmpty ? "" : "\n") + message
                if status == .passed { status = .failed(message: message, type: "leak") }
            }
        }
        var result = base(status, detail: detail)
        result.output = workersOutput()
        result.properties = metrics() + outcomeProperties() + (scenario.limits?.properties ?? []) + Self.storageProperties(namedFiles)
        // Chaos: the plan (the same for the same seed) as properties, what happened in the output.
        if !chaos.plan.isEmpty {
            result.properties += chaos.plan.properties
            if !chaos.log.isEmpty { result.output = chaos.log.joined(separator: "\n") + "\n" + result.output }
        }
        // A differential testcase names the known difference from Qt it shows (`divergence:`), in the output and
        // as a property, so a reader of the report sees that Qt's behaviour was expected on purpose.
        for divergence in scenario.divergences {
            result.properties.append(("divergence", divergence))
            result.output = "divergence: \(divergence)\n" + result.output
        }
        return result
    }

    /// With `leaks: ignore` (a scenario that shows Qt leaving its POSIX segment behind), the run still removes
    /// what is left under its own keys' POSIX names: names unique to this run, made by its workers. Only regular
    /// files this user owns, never through a symlink.
    private func removePOSIXLeftovers(of keys: [NativeIPCKey]) {
        for key in keys where !key.type.isSystemV && !key.nativeKey.isEmpty {
            let bare = key.nativeKey.drop(while: { $0 == "/" })
            guard !bare.isEmpty, !bare.contains("/") else { continue }
            for path in ["/dev/shm/\(bare)", "/dev/shm/sem.\(bare)"] {
                var info = stat()
                guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() else { continue }
                unlink(path)
            }
        }
    }

    private func metrics() -> [(name: String, value: String)] {
        let results = workers.compactMap(\.result)
        guard !results.isEmpty else { return [("workers", "\(workers.count)")] }
        let ops = results.reduce(0) { $0 + $1.ops }
        let maxElapsed = results.map(\.elapsedNs).max() ?? 0
        var props: [(String, String)] = [("workers", "\(workers.count)"), ("operations", "\(ops)")]
        if maxElapsed > 0 { props.append(("operations_per_second", String(Int(Double(ops) / (Double(maxElapsed) / 1e9))))) }
        let locks = results.reduce(0) { $0 + $1.lockCount }
        if locks > 0 {
            props.append(("lock_count", "\(locks)"))
            // Worst worker's percentiles: the ones a user would look at first.
            if let p = results.compactMap(\.lockP50Ns).max() { props.append(("lock_p50_ns", "\(p)")) }
            if let p = results.compactMap(\.lockP90Ns).max() { props.append(("lock_p90_ns", "\(p)")) }
            if let p = results.compactMap(\.lockP99Ns).max() { props.append(("lock_p99_ns", "\(p)")) }
            if let p = results.compactMap(\.lockMaxNs).max() { props.append(("lock_max_ns", "\(p)")) }
        }
        return props
    }

    static func describe(_ status: Int32) -> String {
        if let code = SpawnedProcess.exitCode(status) { return "exit \(code)" }
        return "signal " + Signals.name(SpawnedProcess.signal(status) ?? 0)
    }

    // MARK: resources

    /// The plan's resources, made unique for this run: a segment key `counter` becomes `counter-<token>`, a
    /// file is `<dir>/shm-harness-<id>-<token>`; segments and memfds get a run-scoped path for `lock: lockfile`.
    func planResources(planDirectory: String) -> [Plan.Resource] {
        scenario.resources.map { spec in
            var key: String?
            var path: String?
            switch spec.kind {
            case .segment:
                if let legacy = spec.key {
                    let type: NativeIPCKey.KeyType = spec.backend == .posix ? .posixRealtime : .systemV
                    key = NativeIPCKey.legacy(legacy.isEmpty ? "" : "\(legacy)-\(Self.keySuffix(token))", type: type).toString()
                }
                path = "\(planDirectory)/\(spec.id)"
            case .file:
                path = FileLocation.directory(for: spec.directory ?? "tmpfs").map { "\($0)/shm-harness-\(spec.id)-\(token)" }
            case .memfd:
                path = "\(planDirectory)/\(spec.id)"
            case .semaphore:
                // QSystemSemaphore's own derivation (qipc_systemsem_ key files, /sem. names), unique per run.
                if let legacy = spec.key {
                    let type: NativeIPCKey.KeyType = spec.backend == .posix ? .posixRealtime : .systemV
                    key = NativeIPCKey.legacy("\(legacy)-\(token)", type: type, kind: .systemSemaphore).toString()
                }
            }
            var resource = Plan.Resource(
                id: spec.id, kind: spec.kind, key: key, size: spec.size, lock: spec.lock, lockOffset: spec.lockOffset,
                path: path, fd: nil, isPrivate: spec.isPrivate)
            if spec.kind == .semaphore { resource.initial = spec.initial }
            return resource
        }
    }

    /// memfds are sealed after setup (so setup can fill them first).
    private func sealMemFDs(_ setup: StepExecutor) throws(StepFailure) {
        for spec in scenario.resources where spec.kind == .memfd && !spec.seals.isEmpty {
            guard let handle = setup.handle(spec.id) else { continue }
            do throws(SharedMemoryError) {
                // The write seal refuses while a writable shared mapping exists: setup's goes first.
                if handle.bytes != nil { try handle.detach() }
                try handle.seal(spec.seals)
            } catch {
                throw StepFailure(line: spec.location.line, step: "seal", error: error.code.name, message: error.description, errno: nil)
            }
        }
    }

    /// Files the run named (and their lock files) go when the testcase ends, before the leak check.
    private func removeFiles() {
        for resource in namedFiles {
            guard let path = resource.path else { continue }
            if resource.kind == .file { unlink(path) }
            unlink(path + ".lock")
        }
    }

    // MARK: workers

    private func spawnWorkers(resources: [Plan.Resource], planDirectory: String) throws {
        // send-fd / receive-fd: a socketpair per pair of processes that pass descriptors; each worker inherits
        // its own ends, and the runner closes its copies once all are started (a sender that ends is then EOF).
        let channels = try DescriptorChannelSet(workers: scenario.workers)
        defer { channels.close() }
        var pending: [PendingWorker] = []
        // What every worker's environment has (the runner's, the run's, each resource's): made once, not per
        // worker (a storm has a thousand of them).
        var common = ProcessInfo.processInfo.environment
        common["SHM_HARNESS_RUN_TOKEN"] = token
        common["SHM_HARNESS_RUNNER_PID"] = String(getpid())
        common["SHM_HARNESS_BIN"] = environment.harnessPath  // exec workers run shm-harness itself (e.g. clean, as another user)
        for r in resources {
            let prefix = "SHM_HARNESS_" + (scenario.resource(r.id)?.environmentName ?? r.id.uppercased()) + "_"
            common[prefix + "KIND"] = r.kind.rawValue
            if let key = r.key, let parsed = NativeIPCKey(string: key) {
                common[prefix + "KEY"] = key
                common[prefix + "LEGACY_KEY"] = parsed.legacyKey
                common[prefix + "TYPE"] = parsed.type == .posixRealtime ? "posix" : "systemv"
            }
            if let size = r.size { common[prefix + "SIZE"] = "\(size)" }
            if r.kind == .file, let path = r.path { common[prefix + "PATH"] = path }
            if let fd = r.fd { common[prefix + "FD"] = "\(fd)" }
        }
        for spec in scenario.workers {
            let barriers = Self.barrierNames(spec.steps)
            let steps = Self.withLockTimeouts(spec.steps, default: scenario.timeout)
            for index in 0..<spec.count {
                var plan = Plan(file: scenario.file, group: spec.name, index: index, count: spec.count, resources: resources, steps: steps)
                plan.channels = channels.channels(of: spec.name, index)
                let planPath = "\(planDirectory)/\(spec.name)-\(index).plan"
                try Self.writePlan(plan.encoded(), to: planPath)
                var env = common
                env["SHM_HARNESS_WORKER"] = "\(spec.name)/\(index)"
                var arguments: [String]
                switch spec.impl {
                case .swift:
                    arguments = environment.swiftWorkerCommand + [planPath]
                    if let user = spec.user { arguments += ["--user", user] }
                case .c:
                    arguments = [environment.cWorkerPath ?? "shmh-worker", planPath]
                    if let user = spec.user { arguments += ["--user", user] }
                case .qt:
                    // Without a Qt worker location the requirements skip qt testcases before this.
                    arguments = environment.qtWorker?.arguments(plan: planPath, user: spec.user) ?? ["qt_worker.py", planPath]
                case .exec:
                    // Through the lean worker: it dies with the runner (PDEATHSIG), drops to the user, then execs.
                    arguments = environment.swiftWorkerCommand + (spec.user.map { ["--user", $0] } ?? []) + ["--exec", "--"] + spec.command
                }
                pending.append(PendingWorker(
                    spec: spec, index: index, arguments: arguments, environment: env,
                    inherit: resources.compactMap(\.fd) + plan.channels.map(\.fd), barriers: barriers))
            }
        }
        try startPending(pending)
    }

    /// A `lock` step without `timeout:` waits at most the scenario's timeout.
    static func withLockTimeouts(_ steps: [Step], default timeout: Duration) -> [Step] {
        steps.map { step in
            var step = step
            switch step.action {
            case .lock(let resource, nil): step.action = .lock(resource: resource, timeout: timeout)
            case .acquire(let resource, let n, nil): step.action = .acquire(resource: resource, n: n, timeout: timeout)
            case .repeatTimes(let n, let body): step.action = .repeatTimes(n, withLockTimeouts(body, default: timeout))
            case .repeatFor(let d, let body): step.action = .repeatFor(d, withLockTimeouts(body, default: timeout))
            default: break
            }
            return step
        }
    }

    /// The step at a scenario line in a worker's steps (repeat bodies included).
    static func step(atLine line: Int, in steps: [Step]) -> Step? {
        for step in steps {
            if step.location.line == line { return step }
            switch step.action {
            case .repeatTimes(_, let body), .repeatFor(_, let body):
                if let found = self.step(atLine: line, in: body) { return found }
            default: break
            }
        }
        return nil
    }

    static func barrierNames(_ steps: [Step]) -> Set<String> {
        var names = Set<String>()
        for step in steps {
            switch step.action {
            case .barrier(let name): names.insert(name)
            case .repeatTimes(_, let body), .repeatFor(_, let body): names.formUnion(barrierNames(body))
            default: break
            }
        }
        return names
    }

    /// The event loop: output lines, barriers, exits, and the scenario's timeout.
    private func superviseWorkers() {
        let deadline = Date().addingTimeInterval(scenario.timeout.seconds)
        var timedOut = false
        // Reaping: a worker whose stdout ended has (nearly always) exited: waitpid it at once; every live worker
        // only every 50 ms (a program may hand its stdout to a child that outlives it). A waitpid per live worker
        // per wake-up was quadratic in the worker count (1,024 workers: a million system calls).
        var lastSweep = UInt64(0)
        var idleSleep: UInt32 = 100
        while workers.contains(where: { $0.process.status == nil }) {
            var fds: [pollfd] = []
            var owners: [(Int, Bool)] = []
            for (i, w) in workers.enumerated() where w.process.status == nil || !w.stdout.closed || !w.stderr.closed {
                if !w.stdout.closed { fds.append(pollfd(fd: w.process.stdoutFD, events: Int16(POLLIN), revents: 0)); owners.append((i, true)) }
                if !w.stderr.closed { fds.append(pollfd(fd: w.process.stderrFD, events: Int16(POLLIN), revents: 0)); owners.append((i, false)) }
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                timedOut = true
                break
            }
            fireDueKills()
            let wait = min(left, 0.05, chaos.nextDue().map { $0 + 0.0005 } ?? 1)
            let ready = fds.isEmpty ? 0 : Glibc.poll(&fds, nfds_t(fds.count), Int32((wait * 1000).rounded(.up)))
            if fds.isEmpty {
                // Every pipe ended: the workers are exiting. Look again soon, then less and less often (never
                // past a chaos kill that is due).
                usleep(min(idleSleep, UInt32(max(wait, 0.0001) * 1e6)))
                idleSleep = min(idleSleep * 2, 10_000)
            } else {
                idleSleep = 100
            }
            if ready > 0 {
                for (n, fd) in fds.enumerated() where fd.revents != 0 {
                    let (i, isStdout) = owners[n]
                    if isStdout {
                        for line in workers[i].stdout.read(fd.fd) { handle(line, from: i) }
                    } else {
                        workers[i].drainStandardError()
                    }
                }
            }
            let now = UInt64(shm_shim_monotonic_ns())
            let sweep = now &- lastSweep >= 50_000_000
            if sweep { lastSweep = now }
            for i in workers.indices where workers[i].process.status == nil && (sweep || workers[i].stdout.closed) {
                if workers[i].process.poll() != nil {
                    // Drain what is left, then see whether a barrier can no longer be met.
                    for line in workers[i].stdout.read(workers[i].process.stdoutFD) { handle(line, from: i) }
                    workers[i].drainStandardError()
                    workers[i].process.closeInput()
                    for name in workers[i].barriersNamed { checkBarrier(name) }
                }
            }
        }
        if timedOut {
            askWhereTheyAre()
            let alive = workers.filter { $0.process.status == nil }
            for w in alive { w.process.killGroup() }
            for w in alive { w.process.wait() }
            for i in workers.indices {
                for line in workers[i].stdout.read(workers[i].process.stdoutFD) { handle(line, from: i) }
                workers[i].drainStandardError()
            }
            let named = workers.filter { w in alive.contains { $0.label == w.label } }.map(describeHung)
            problems.insert((.error, "timeout: the scenario ran longer than \(DurationText.format(scenario.timeout)); killed \(alive.count) worker(s): \(named.prefix(8).joined(separator: ", "))\(alive.count > 8 ? ", ..." : "")"), at: 0)
        }
        for i in workers.indices {
            workers[i].drainStandardError()
            judge(i)
        }
    }

    /// Before the kill: each Swift or C worker still running is asked where it is (SIGUSR1: it writes `at LINE`);
    /// their answers are read for up to a second.
    private func askWhereTheyAre() {
        let asked = workers.indices.filter { workers[$0].process.status == nil && workers[$0].spec.impl != .exec }
        guard !asked.isEmpty else { return }
        for i in asked { kill(workers[i].process.pid, SIGUSR1) }
        let deadline = Date().addingTimeInterval(1)
        while Date() < deadline && asked.contains(where: { workers[$0].atLine == nil && workers[$0].process.status == nil }) {
            var fds = asked.map { pollfd(fd: workers[$0].process.stdoutFD, events: Int16(POLLIN), revents: 0) }
            _ = Glibc.poll(&fds, nfds_t(fds.count), 50)
            for (n, i) in asked.enumerated() where fds[n].revents != 0 {
                for line in workers[i].stdout.read(workers[i].process.stdoutFD) { handle(line, from: i) }
            }
            for i in asked where workers[i].process.status == nil { _ = workers[i].process.poll() }
        }
    }

    /// `waiter/0 at FILE:LINE (lock)`, or `waiting at barrier NAME`, or the label alone.
    private func describeHung(_ w: Worker) -> String {
        if let line = w.atLine, line > 0 {
            let kind = Self.step(atLine: line, in: w.spec.steps).map { $0.action.kind.rawValue } ?? "step"
            return "\(w.label) at \(scenario.file):\(line) (\(kind))"
        }
        if let barrier = w.waitingAt { return "\(w.label) waiting at barrier \(barrier)" }
        return w.label
    }

    private func handle(_ line: String, from i: Int) {
        if line.hasPrefix("at "), workers[i].spec.impl != .exec, let number = Int(line.dropFirst(3)) {
            workers[i].atLine = number
        } else if line.hasPrefix("barrier ") {
            let name = String(line.dropFirst("barrier ".count))
            workers[i].waitingAt = name
            checkBarrier(name)
        } else if line.hasPrefix("result ") {
            workers[i].result = try? JSONDecoder().decode(WorkerProcess.Result.self, from: Data(line.dropFirst("result ".count).utf8))
        } else {
            workers[i].keep([line])
        }
    }

    /// Releases a barrier once every worker that names it waits there; if one of them has ended instead, the
    /// ones waiting are released with an error (the testcase errs, naming the barrier and the missing worker).
    private func checkBarrier(_ name: String) {
        let participants = workers.indices.filter { workers[$0].barriersNamed.contains(name) }
        let waiting = participants.filter { workers[$0].waitingAt == name }
        guard !waiting.isEmpty else { return }
        if let gone = participants.first(where: { workers[$0].process.status != nil && workers[$0].waitingAt != name }) {
            let message = "barrier '\(name)': worker \(workers[gone].label) ended (\(Self.describe(workers[gone].process.status ?? 0))) without reaching it"
            problems.append((.error, message))
            for i in waiting {
                workers[i].waitingAt = nil
                workers[i].process.send("abort \(name) \(message)")
            }
            return
        }
        guard waiting.count == participants.count else { return }
        for i in waiting {
            workers[i].waitingAt = nil
            workers[i].process.send("go \(name)")
        }
    }

    /// Compares a worker's end with its `expect`.
    private func judge(_ i: Int) {
        let w = workers[i]
        guard let status = w.process.status else { return }
        let where_ = "worker \(w.label)"
        let exit = SpawnedProcess.exitCode(status)
        let signal = SpawnedProcess.signal(status)
        if endedByChaos(i) { return }
        if let result = w.result, !result.ok {
            let step = "\(scenario.file):\(result.line ?? 0) (\(result.step ?? "?"))"
            let kind: Kind = result.error == "barrier-aborted" || result.error == "unsupported" ? .error : .failure
            problems.append((kind, "\(where_), step at \(step): \(result.error ?? "failed"): \(result.message ?? "")"))
            return
        }
        switch w.spec.expect {
        case .exit(let want):
            if let exit, exit == want { return }
            if let signal {
                problems.append((.error, "\(where_) was killed by \(Signals.name(signal)); expected exit \(want)"))
            } else if exit == 3 {
                problems.append((.error, "\(where_) could not run here: \(w.tail.last ?? "not applicable")"))
            } else if exit == 2 && w.spec.impl != .exec {
                problems.append((.error, "\(where_) is broken (exit 2): \(w.tail.last ?? "")"))
            } else {
                problems.append((.failure, "\(where_) ended with exit \(exit ?? -1); expected exit \(want)"))
            }
        case .signal(let want):
            if signal == want { return }
            problems.append((.failure, "\(where_) ended with \(Self.describe(status)); expected signal \(Signals.name(want))"))
        }
    }

    /// `expect: memory:` through the runner's own attachment (setup's), or a temporary read-only one.
    private func checkMemory(setup: StepExecutor, resources: [Plan.Resource]) {
        for check in scenario.expect.memory {
            let label = "expect memory \(check.resource)@\(check.offset) (\(check.location))"
            guard let handle = setup.handle(check.resource) else { continue }
            var temporary: ResourceHandle?
            if handle.bytes == nil {
                let probe = handle.isMemFD ? handle : ResourceHandle.make(handle.spec)
                probe.takesLocks = !everyWorkerEnded
                do {
                    try probe.attach(readOnly: true)
                } catch {
                    problems.append((.failure, "\(label): cannot attach: \(error)"))
                    continue
                }
                temporary = probe
            }
            do {
                let got = try (temporary ?? handle).read(at: check.offset, count: check.value.bytes.count)
                if check.comparison == .lessThan {
                    if let bound = Self.notBelow(got, check) { problems.append((.failure, "\(label): \(bound)")) }
                } else if got != check.value.bytes {
                    let shown: StoredValue = if case .u64 = check.value { .u64(StepExecutor.littleEndian(got)) } else { .bytes(got) }
                    problems.append((.failure, "\(label): want \(check.value), got \(shown)"))
                }
            } catch {
                problems.append((.failure, "\(label): \(error)"))
            }
            try? temporary?.detach()
        }
    }
}
