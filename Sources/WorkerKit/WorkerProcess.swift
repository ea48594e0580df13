import CShmShim

#if canImport(Glibc)
import Glibc
#endif

/// The Swift worker: `shm-harness worker PLAN`. Runs one plan's steps and talks to the runner over
/// stdin/stdout:
/// - `barrier NAME` (to the runner), then waits for `go NAME` or `abort NAME REASON` on stdin;
/// - last line: `result {json}` with `ok`, the failing `line`, `step`, `error`, `message`, `errno`, and the
///   counters (`ops`, `elapsedNs`, `lockCount`, `lockP50Ns`, `lockP90Ns`, `lockP99Ns`, `lockMaxNs`).
///
/// Exit status (LTP/stress-ng style): 0 every step did what it should, 1 a step failed its expectation,
/// 2 broken (unreadable plan), 3 not applicable here (e.g. the user to drop to does not exist).
public enum WorkerProcess {
    public struct Result: Codable, Sendable {
        public var ok: Bool
        public var line: Int?
        public var step: String?
        public var error: String?
        public var message: String?
        public var errno: Int32?
        public var ops: Int
        public var elapsedNs: UInt64
        public var lockCount: Int
        public var lockP50Ns: UInt64?
        public var lockP90Ns: UInt64?
        public var lockP99Ns: UInt64?
        public var lockMaxNs: UInt64?
        /// `count: NAME` steps: counter -> outcome -> how many times (absent when the plan counts nothing).
        public var outcomes: [String: [String: Int]]? = nil
    }

    public static func main(planPath: String, user: String?) -> Int32 {
        guard setParentDeathSignal() else { return 2 }
        // The runner asks a worker that ran out of time where it is (SIGUSR1) before it kills it.
        _ = shm_shim_install_step_reporter()
        guard let text = WorkerOutput.readFile(planPath) else {
            WorkerOutput.standardError("shm-harness worker: cannot read the plan \(planPath)\n")
            return 2
        }
        let plan: Plan
        do {
            plan = try Plan.parse(text)
        } catch {
            WorkerOutput.standardError("shm-harness worker: \(planPath): \(error)\n")
            return 2
        }
        if let user {
            if let reason = UserDrop.drop(to: user) {
                WorkerOutput.standardError("shm-harness worker: cannot run as \(user): \(reason)\n")
                return 3
            }
            // Changing credentials clears the parent-death signal: ask again.
            guard setParentDeathSignal() else { return 2 }
        }
        let executor = StepExecutor(resources: plan.resources) { (name: String) throws(StepFailure) in
            print("barrier \(name)")
            fflush(nil)
            guard let reply = readLine() else {
                throw StepFailure(line: 0, step: "barrier", error: "barrier-aborted", message: "the runner went away", errno: nil)
            }
            if reply == "go \(name)" { return }
            throw StepFailure(line: 0, step: "barrier", error: "barrier-aborted", message: String(reply.dropFirst("abort ".count)), errno: nil)
        }
        executor.channels = DescriptorChannels(plan.channels)
        var result = Result(ok: true, ops: 0, elapsedNs: 0, lockCount: 0)
        var status: Int32 = 0
        do {
            try executor.run(plan.steps)
        } catch {
            result.ok = false
            result.line = error.line
            result.step = error.step
            result.error = error.error
            result.message = error.message
            result.errno = error.errno
            status = 1
        }
        executor.closeAll()
        let stats = executor.stats
        result.ops = stats.operations
        result.elapsedNs = stats.elapsedNanoseconds
        result.lockCount = stats.lockLatencies.count
        // One sort for the three percentiles (up to 200,000 samples: three sorts were tens of ms at exit).
        var sortedStats = WorkerStats()
        sortedStats.lockLatencies = stats.lockLatencies.sorted()
        result.lockP50Ns = sortedStats.percentile(0.5, sorted: true)
        result.lockP90Ns = sortedStats.percentile(0.9, sorted: true)
        result.lockP99Ns = sortedStats.percentile(0.99, sorted: true)
        result.lockMaxNs = sortedStats.lockLatencies.last
        if !stats.tallies.isEmpty { result.outcomes = stats.tallies }
        print("result " + result.json)
        fflush(nil)
        return status
    }
}

/// Asks the kernel to SIGKILL this process when its parent (the runner) dies; false if the parent is gone
/// already (the runner's pid is in SHM_HARNESS_RUNNER_PID).
public func setParentDeathSignal() -> Bool {
    _ = shm_shim_set_parent_death_signal(SIGKILL)
    if let expected = getenv("SHM_HARNESS_RUNNER_PID").flatMap({ pid_t(String(cString: $0)) }) {
        return getppid() == expected
    }
    return true
}

extension WorkerProcess.Result {
    /// The result line's JSON object, keys sorted, absent values left out (as JSONEncoder wrote it).
    public var json: String {
        var fields: [(String, String)] = [("elapsedNs", "\(elapsedNs)")]
        if let errno { fields.append(("errno", "\(errno)")) }
        if let error { fields.append(("error", WorkerOutput.json(error))) }
        if let line { fields.append(("line", "\(line)")) }
        fields.append(("lockCount", "\(lockCount)"))
        if let lockMaxNs { fields.append(("lockMaxNs", "\(lockMaxNs)")) }
        if let lockP50Ns { fields.append(("lockP50Ns", "\(lockP50Ns)")) }
        if let lockP90Ns { fields.append(("lockP90Ns", "\(lockP90Ns)")) }
        if let lockP99Ns { fields.append(("lockP99Ns", "\(lockP99Ns)")) }
        if let message { fields.append(("message", WorkerOutput.json(message))) }
        fields.append(("ok", ok ? "true" : "false"))
        fields.append(("ops", "\(ops)"))
        if let outcomes {
            // {"counter":{"outcome":n,...},...}, keys sorted like the rest
            let counters = outcomes.keys.sorted().map { name in
                let tally = outcomes[name]!.keys.sorted().map { "\(WorkerOutput.json($0)):\(outcomes[name]![$0]!)" }
                return "\(WorkerOutput.json(name)):{" + tally.joined(separator: ",") + "}"
            }
            fields.append(("outcomes", "{" + counters.joined(separator: ",") + "}"))
        }
        if let step { fields.append(("step", WorkerOutput.json(step))) }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// Drops to another user (its primary group, no supplementary groups); nil on success, or why not.
public func dropPrivileges(to user: String) -> String? { UserDrop.drop(to: user) }

/// Drops to another user before the first step (its primary group, no supplementary groups).
enum UserDrop {
    /// nil on success, or why not.
    static func drop(to user: String) -> String? {
        var uid: uid_t
        var gid: gid_t
        if let pw = getpwnam(user) {
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
        } else if let number = UInt32(user), let pw = getpwuid(number) {
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
        } else {
            return "no such user"
        }
        guard geteuid() == 0 else { return "dropping to another user needs root" }
        guard setgroups(0, nil) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            return String(cString: strerror(errno))
        }
        _ = uid
        _ = gid
        return nil
    }
}
