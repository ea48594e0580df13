import Foundation
import ScenarioKit
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// What a run needs to know about this machine and this build.
public struct RunEnvironment: Sendable {
    /// The `shm-harness` executable (workers are this binary re-executed).
    public var harnessPath: String
    /// The C worker, if built.
    public var cWorkerPath: String?
    /// A private directory for plans (0700), removed at the end of the run.
    public var workDirectory: String
    public var requirements: Requirements
    /// Compare the whole machine's IPC objects before and after each scenario (off when scenarios run in
    /// parallel, or when asked: other programs on a busy machine make and remove objects too).
    public var checkGlobalLeaks: Bool
    /// Strict mode (`run --strict`, the default when `CI=true`): a testcase that cannot run because this build
    /// lacks a worker, peer or tool is an error, not a skip. What the machine lacks (root, a second user,
    /// memfd...) stays a skip either way.
    public var strict = false

    /// - Parameter token: the run's token: the private folder is `$TMPDIR/shm-harness-run-<token>`, journaled
    ///   before it is made.
    static func current(jobs: Int, machineLeakCheck: Bool, strict: Bool = false, token: String = String(UInt32.random(in: .min ... .max), radix: 16), journal: JournalWriter? = nil) throws -> RunEnvironment {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let (cWorker, cWorkerProblem) = findCWorker(beside: exe)
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let work = "\(base)/shm-harness-run-\(token)"
        journal?.recordWorkDirectory(work)
        // 0711: workers that drop to another user must read their plans (the plans themselves are 0644).
        guard mkdir(work, 0o700) == 0 else { throw SpawnError("run", "mkdir \(work)", errno) }
        chmod(work, 0o711)
        return RunEnvironment(
            harnessPath: exe, cWorkerPath: cWorker, workDirectory: work,
            requirements: Requirements(harnessPath: exe, cWorkerPath: cWorker, cWorkerProblem: cWorkerProblem),
            checkGlobalLeaks: machineLeakCheck && jobs <= 1, strict: strict)
    }

    /// The C worker: the one SHM_HARNESS_C_WORKER names (a sanitizer build, say; if it names no executable,
    /// that is the problem, with no fallback), else the one SwiftPM builds beside this binary (the package
    /// builds it with `shm-harness`), else a Makefile build in the current checkout.
    static func findCWorker(beside exe: String) -> (path: String?, problem: String?) {
        let isExecutable = { (path: String) in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: path)
        }
        if let named = ProcessInfo.processInfo.environment["SHM_HARNESS_C_WORKER"], !named.isEmpty {
            return isExecutable(named) ? (named, nil) : (nil, "SHM_HARNESS_C_WORKER names \(named), which is not an executable file")
        }
        let candidates = [
            (exe as NSString).deletingLastPathComponent + "/shmh-worker",
            FileManager.default.currentDirectoryPath + "/CHarness/build/shmh-worker",
        ]
        if let found = candidates.first(where: isExecutable) { return (found, nil) }
        return (nil, "the C worker shmh-worker is neither beside \(exe) (`swift build` builds it there) nor in ./CHarness/build, and SHM_HARNESS_C_WORKER is not set")
    }

    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The `requires:` vocabulary, probed once per run, and what this build can run.
public struct Requirements: Sendable {
    public let met: [Requirement: Bool]
    public let reasons: [Requirement: String]
    let cWorkerPath: String?
    let cWorkerProblem: String?

    /// Why a testcase cannot run here.
    public struct Unmet: Sendable, Equatable {
        public var reason: String
        /// This build (or its set-up) lacks a piece: a worker, a peer, a tool. Strict mode makes it an error;
        /// otherwise the machine itself lacks something (root, a second user, memfd, a backend), a plain skip.
        public var missingPiece: Bool
    }

    /// Given facts (for tests).
    init(met: [Requirement: Bool], reasons: [Requirement: String], cWorkerPath: String?, cWorkerProblem: String?) {
        self.met = met
        self.reasons = reasons
        self.cWorkerPath = cWorkerPath
        self.cWorkerProblem = cWorkerProblem
    }

    init(harnessPath: String, cWorkerPath: String?, cWorkerProblem: String? = nil) {
        self.cWorkerPath = cWorkerPath
        self.cWorkerProblem = cWorkerProblem
        var met: [Requirement: Bool] = [:]
        var reasons: [Requirement: String] = [:]
        let root = geteuid() == 0
        met[.root] = root
        reasons[.root] = "requires root (running as uid \(geteuid()))"
        var secondUser = false
        if !root {
            reasons[.secondUser] = "requires second-user: only root may switch to another user"
        } else if getpwnam("nobody") == nil {
            reasons[.secondUser] = "requires second-user: no user 'nobody' on this machine"
        } else if let probe = try? SpawnedProcess(
            label: "probe", arguments: [harnessPath, "worker", "--user", "nobody", "--probe"],
            environment: ProcessInfo.processInfo.environment), SpawnedProcess.exitCode(probe.wait()) == 0
        {
            secondUser = true
        } else {
            reasons[.secondUser] = "requires second-user: 'nobody' cannot run \(harnessPath) (a directory on its path is not searchable by others)"
        }
        met[.secondUser] = secondUser
        let shmid = shmget(IPC_PRIVATE, 4096, 0o600)
        met[.sysv] = shmid >= 0
        if shmid >= 0 { shmctl(shmid, IPC_RMID, nil) }
        reasons[.sysv] = "requires sysv: System V shared memory is not available here"
        let name = "/shm-harness-probe-\(getpid())"
        let fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600)
        met[.posix] = fd >= 0
        if fd >= 0 {
            close(fd)
            shm_unlink(name)
        }
        reasons[.posix] = "requires posix: POSIX shared memory (/dev/shm) is not usable here"
        if let probe = try? MemFD.create(name: "shm-harness-probe", size: 0) {
            met[.memfd] = true
            probe.close()
        } else {
            met[.memfd] = false
        }
        reasons[.memfd] = "requires memfd: memfd_create is not available here"
        met[.tmpfsDevShm] = MountTable.isTmpfs("/dev/shm")
        reasons[.tmpfsDevShm] = "requires tmpfs-dev-shm: /dev/shm is not a tmpfs"
        let temp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let diskBacked = [temp, "/var/tmp"].contains { FileManager.default.fileExists(atPath: $0) && !MountTable.isTmpfs($0) }
        met[.diskTmp] = diskBacked
        reasons[.diskTmp] = "requires disk-tmp: no disk-backed temp directory (TMPDIR and /var/tmp are tmpfs)"
        self.met = met
        self.reasons = reasons
    }

    /// Why a scenario cannot run here, or nil.
    public func unmet(_ scenario: Scenario) -> String? { whyNot(scenario)?.reason }

    /// Why a scenario cannot run here, and whether what is missing is a piece of the build, or nil.
    public func whyNot(_ scenario: Scenario) -> Unmet? {
        if scenario.workers.contains(where: { $0.impl == .c }) && cWorkerPath == nil {
            return Unmet(reason: "impl: c needs the C worker shmh-worker: " + (cWorkerProblem ?? "not found"), missingPiece: true)
        }
        return machineLacks(scenario).map { Unmet(reason: $0, missingPiece: false) }
    }

    private func machineLacks(_ scenario: Scenario) -> String? {
        for requirement in scenario.requires where met[requirement] != true {
            return reasons[requirement] ?? "requires \(requirement.rawValue)"
        }
        for worker in scenario.workers where worker.user != nil && met[.secondUser] != true {
            return "worker '\(worker.name)' runs as \(worker.user!): " + (reasons[.secondUser] ?? "cannot switch users here")
        }
        for resource in scenario.resources {
            if resource.kind == .memfd && met[.memfd] != true { return "resource '\(resource.id)': " + (reasons[.memfd] ?? "") }
            if resource.kind == .file, let dir = resource.directory, let reason = FileLocation.unavailableReason(dir) {
                return "resource '\(resource.id)': \(reason)"
            }
            if resource.kind == .segment {
                let backend: Requirement = resource.backend == .posix ? .posix : .sysv
                if met[backend] != true { return reasons[backend] }
            }
        }
        return nil
    }
}
