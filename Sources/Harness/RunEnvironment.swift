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
    /// The lean Swift worker `shm-harness-worker` beside this binary, if built (else `shm-harness worker`).
    public var swiftWorkerPath: String? = nil
    /// The Qt worker (`impl: qt`): the Qt peer's python and the embedded script, written into the work directory.
    public var qtWorker: QtWorkerLocation? = nil
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
    /// `$TMPDIR`, else `/tmp`: where the run's private folder and Qt's key files (`qipc_*`) are.
    static var temporaryDirectory: String {
        ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    static func current(jobs: Int, machineLeakCheck: Bool, strict: Bool = false, token: String = String(UInt32.random(in: .min ... .max), radix: 16), journal: JournalWriter? = nil) throws -> RunEnvironment {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let (cWorker, cWorkerProblem) = findCWorker(beside: exe)
        let base = RunEnvironment.temporaryDirectory
        let work = "\(base)/shm-harness-run-\(token)"
        journal?.recordWorkDirectory(work)
        // 0711: workers that drop to another user must read their plans (the plans themselves are 0644).
        guard mkdir(work, 0o700) == 0 else { throw SpawnError("run", "mkdir \(work)", errno) }
        chmod(work, 0o711)
        let qt = QtWorkerLocation(harnessPath: exe, workDirectory: work)
        let swiftWorker = findSwiftWorker(beside: exe)
        return RunEnvironment(
            harnessPath: exe, cWorkerPath: cWorker, swiftWorkerPath: swiftWorker, qtWorker: qt, workDirectory: work,
            requirements: Requirements(
                harnessPath: exe, cWorkerPath: cWorker, cWorkerProblem: cWorkerProblem, qtWorker: qt,
                swiftWorker: swiftWorkerCommand(swiftWorker, harnessPath: exe)),
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
    /// Where `impl: qt` runs (nil: nowhere, e.g. requirements given as facts in tests).
    var qtWorker: QtWorkerLocation?
    /// second-user, when it needs a worker process to tell (root, and 'nobody' exists).
    var secondUserProbe: SecondUserProbe? = nil

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

    init(harnessPath: String, cWorkerPath: String?, cWorkerProblem: String? = nil, qtWorker: QtWorkerLocation? = nil, swiftWorker: [String]? = nil) {
        self.cWorkerPath = cWorkerPath
        self.cWorkerProblem = cWorkerProblem
        self.qtWorker = qtWorker
        var met: [Requirement: Bool] = [:]
        var reasons: [Requirement: String] = [:]
        let root = geteuid() == 0
        met[.root] = root
        reasons[.root] = "requires root (running as uid \(geteuid()))"
        if !root {
            reasons[.secondUser] = "requires second-user: only root may switch to another user"
            met[.secondUser] = false
        } else if getpwnam("nobody") == nil {
            reasons[.secondUser] = "requires second-user: no user 'nobody' on this machine"
            met[.secondUser] = false
        } else {
            // Asked of a worker process the first time a testcase needs it (a process per run saved otherwise).
            secondUserProbe = SecondUserProbe(command: (swiftWorker ?? [harnessPath, "worker"]) + ["--user", "nobody", "--probe"], harnessPath: harnessPath)
        }
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
        let temp = RunEnvironment.temporaryDirectory
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
        // The Qt peer is a piece of the set-up too (scripts/qt-venv.sh): strict mode makes its absence an error.
        if scenario.workers.contains(where: { $0.impl == .qt }) {
            if let reason = qtWorker.map({ $0.unavailableReason }) ?? QtWorkerLocation.skipReason {
                return Unmet(reason: reason, missingPiece: true)
            }
        }
        return machineLacks(scenario).map { Unmet(reason: $0, missingPiece: false) }
    }

    private func machineLacks(_ scenario: Scenario) -> String? {
        for requirement in scenario.requires where !isMet(requirement) {
            return reason(requirement) ?? "requires \(requirement.rawValue)"
        }
        for worker in scenario.workers where worker.user != nil && !isMet(.secondUser) {
            return "worker '\(worker.name)' runs as \(worker.user!): " + (reason(.secondUser) ?? "cannot switch users here")
        }
        for resource in scenario.resources {
            if resource.kind == .memfd && met[.memfd] != true { return "resource '\(resource.id)': " + (reasons[.memfd] ?? "") }
            if resource.kind == .file, let dir = resource.directory, let reason = FileLocation.unavailableReason(dir) {
                return "resource '\(resource.id)': \(reason)"
            }
            if resource.kind == .segment || resource.kind == .semaphore {
                let backend: Requirement = resource.backend == .posix ? .posix : .sysv
                if met[backend] != true { return reasons[backend] }
            }
        }
        return nil
    }
}

/// Where the Qt worker (`impl: qt`) runs: the Qt peer's python (with PySide6) and the worker script, which is
/// embedded in this binary and written into the run's private folder on first use.
///
/// The python is `SHM_HARNESS_QT_PYTHON` if set (scripts/test.sh sets it from scripts/qt-venv.sh), else the
/// `.venv-qt/bin/python` of the checkout this binary was built in (found by walking up from the binary), else
/// that of the current directory. Whether it can import PySide6 is probed once, when a qt testcase first asks.
public final class QtWorkerLocation: @unchecked Sendable {
    /// The skip reason's fixed part (the same code path as the C worker's missing-worker skip).
    public static let skipReason = "impl: qt needs PySide6 (run scripts/qt-venv.sh or set SHM_HARNESS_QT_PYTHON)"

    /// The python to run, if one was found.
    public let python: String?
    /// Where the script is written.
    public let scriptPath: String
    private let why: String
    private let lock = NSLock()
    private var probed: String??

    init(harnessPath: String, workDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        scriptPath = workDirectory + "/qt_worker.py"
        if let named = environment["SHM_HARNESS_QT_PYTHON"], !named.isEmpty {
            python = FileManager.default.isExecutableFile(atPath: named) ? named : nil
            why = "SHM_HARNESS_QT_PYTHON=\(named) is not an executable file"
            return
        }
        var candidates: [String] = []
        var directory = (harnessPath as NSString).deletingLastPathComponent
        for _ in 0..<5 {
            candidates.append(directory + "/.venv-qt/bin/python")
            let parent = (directory as NSString).deletingLastPathComponent
            if parent == directory { break }
            directory = parent
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/.venv-qt/bin/python")
        python = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        why = "no .venv-qt beside this binary's checkout or in the current directory"
    }

    /// nil when `impl: qt` can run (python found, PySide6 imports, the script written), else why not.
    public var unavailableReason: String? {
        lock.lock()
        defer { lock.unlock() }
        if let probed { return probed }
        let reason = probe()
        probed = .some(reason)
        return reason
    }

    private func probe() -> String? {
        guard let python else { return Self.skipReason + ": " + why }
        var environment = ProcessInfo.processInfo.environment
        environment["QT_QPA_PLATFORM"] = environment["QT_QPA_PLATFORM"] ?? "offscreen"
        guard let process = try? SpawnedProcess(
            label: "qt-probe", arguments: [python, "-I", "-c", "import PySide6.QtCore"], environment: environment)
        else { return Self.skipReason + ": \(python) does not start" }
        guard SpawnedProcess.exitCode(process.wait()) == 0 else { return Self.skipReason + ": \(python) cannot import PySide6.QtCore" }
        // 0644 in the 0711 work directory: workers that drop to another user read it too.
        let fd = open(scriptPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "impl: qt: cannot write the Qt worker to \(scriptPath): \(String(cString: strerror(errno)))" }
        let bytes = Array((QtWorkerScript.source + "\n").utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o644)
        close(fd)
        guard written == bytes.count else { return "impl: qt: cannot write the Qt worker to \(scriptPath)" }
        return nil
    }

    /// The worker's command line.
    func arguments(plan: String, user: String?) -> [String] {
        [python ?? "python3", "-I", scriptPath, plan] + (user.map { ["--user", $0] } ?? [])
    }
}
