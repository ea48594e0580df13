/// One testcase: a scenario file, with one combination of its matrix applied.
public struct Scenario: Sendable {
    /// The file, as given (relative paths stay relative).
    public var file: String
    /// The folder below the scenarios root (JUnit classname); "scenarios" for files at the root.
    public var classname: String
    /// `name` (default: the file's stem).
    public var name: String
    public var summary: String
    public var tags: [String]
    public var requires: [Requirement]
    public var timeout: Duration
    /// The matrix combination, in the matrix's order (empty without a matrix).
    public var combination: [(name: String, value: String)]
    public var resources: [ResourceSpec]
    public var setup: [Step]
    public var workers: [WorkerSpec]
    public var expect: ScenarioExpectation
    public var location: SourceLocation
    /// `divergence:` a known, deliberate difference from Qt that this scenario shows (reported with the
    /// testcase); workers may name their own.
    public var divergence: String? = nil
    /// `limits:` kernel and descriptor limits applied inside the testcase's private namespaces (nil: none).
    public var limits: TestcaseLimits? = nil
    /// `chaos:` kills the runner sends at random moments (see ``ChaosKill``).
    public var chaos: [ChaosKill] = []
    /// `start-delay: {max: D}`: each worker starts after a random delay in [0, D].
    public var startDelay: Duration? = nil

    /// Every divergence the scenario and its workers name, scenario's first.
    public var divergences: [String] {
        [divergence].compactMap { $0 } + workers.compactMap { w in w.divergence.map { "worker \(w.name): \($0)" } }
    }

    /// The JUnit testcase name: `counter[backend=systemv,impl=c]`.
    public var testName: String {
        combination.isEmpty ? name : name + "[" + combination.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "]"
    }

    /// `classname.testName`, unique in a report.
    public var identifier: String { classname + "." + testName }

    public func resource(_ id: String) -> ResourceSpec? { resources.first { $0.id == id } }
}

public enum Requirement: String, Sendable, CaseIterable {
    case root, secondUser = "second-user", sysv, posix, memfd, tmpfsDevShm = "tmpfs-dev-shm", diskTmp = "disk-tmp"
}

public enum ResourceKind: String, Sendable, CaseIterable {
    /// `semaphore`: a keyed system semaphore (QSystemSemaphore), no memory.
    case segment, file, memfd, semaphore
}

public enum SegmentBackend: String, Sendable, CaseIterable {
    case systemv, posix
}

public enum LockKind: String, Sendable, CaseIterable {
    case semaphore, futex, robustMutex = "robust-mutex", lockfile
}

public enum Seal: String, Sendable, CaseIterable {
    case shrink, grow, write, futureWrite = "future-write", seal
}

public struct ResourceSpec: Sendable {
    public var id: String
    public var kind: ResourceKind
    /// Segments: the backend.
    public var backend: SegmentBackend?
    /// Segments: the legacy key as written (made unique per run by the runner).
    public var key: String?
    public var size: Int?
    public var lock: LockKind
    public var lockOffset: Int
    /// Files: tmpfs, disk, runtime, or a path.
    public var directory: String?
    public var isPrivate: Bool
    public var seals: [Seal]
    public var location: SourceLocation
    /// memfd: how workers get it: by inheritance (the runner makes it), or passed between workers over the
    /// runner's sockets (a worker makes it and sends it with `send-fd`).
    public var share: MemFDShare = .inherit
    /// Semaphores: the count a create (or an open that makes it) starts with.
    public var initial: Int = 0

    /// The environment name part: upper-cased, `-` as `_`.
    public var environmentName: String {
        id.uppercased().map { $0 == "-" ? "_" : $0 }.map(String.init).joined()
    }
}

public enum WorkerImpl: String, Sendable, CaseIterable {
    /// `qt`: real Qt (PySide6) running the plan: QSharedMemory segments with their lock semaphore only.
    case swift, c, exec, qt
}

public struct WorkerSpec: Sendable {
    public var name: String
    public var count: Int
    public var impl: WorkerImpl
    public var command: [String]
    public var user: String?
    public var steps: [Step]
    public var expect: Termination
    public var location: SourceLocation
    /// `divergence:` how this worker's expected behaviour differs from what the library does (for `impl: qt`
    /// workers that show Qt's own behaviour).
    public var divergence: String? = nil
}

/// How a worker process must end.
public enum Termination: Sendable, Equatable, CustomStringConvertible {
    case exit(Int32)
    case signal(Int32)

    public var description: String {
        switch self {
        case .exit(let code): "exit \(code)"
        case .signal(let number): "signal \(Signals.name(number))"
        }
    }
}

public struct ScenarioExpectation: Sendable {
    public var memory: [MemoryCheck]
    /// `leaks: none` (the default) checks that the machine's IPC objects are as before the scenario.
    public var checkLeaks: Bool
    /// `outcomes:` the tallies of `count:` steps, summed over every worker.
    public var outcomes: [OutcomeExpectation] = []
}

public struct MemoryCheck: Sendable {
    public var resource: String
    public var offset: Int
    public var value: StoredValue
    public var location: SourceLocation
    /// `u64:`/`hex:` must equal; `u64-less-than:` must be below (a catalogue negative control states that
    /// updates must be lost this way).
    public var comparison: MemoryComparison = .equal
}

public enum MemoryComparison: Sendable, Equatable {
    case equal, lessThan
}

/// A value a step stores or checks: a 64-bit little-endian integer or raw bytes.
public enum StoredValue: Sendable, Equatable, CustomStringConvertible {
    case u64(UInt64)
    case bytes([UInt8])

    public var bytes: [UInt8] {
        switch self {
        case .u64(let value): (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        case .bytes(let bytes): bytes
        }
    }

    public var description: String {
        switch self {
        case .u64(let value): "u64 \(value)"
        case .bytes(let bytes): "hex " + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
    }
}

/// One step of a worker (or of setup), with the line it came from.
public struct Step: Sendable {
    public var action: Action
    public var expectError: String?
    public var location: SourceLocation
    /// `expect-error: [none, already-exists]`: the outcomes the step may end in (`none`: success); nil when
    /// `expect-error` is absent or a single name (then `expectError`). See ``Step/accepts(_:)``.
    public var outcomes: [String]? = nil
    /// `count: NAME`: tally this step's outcome under NAME (summed over the workers; `expect: outcomes:`).
    public var count: String? = nil

    public indirect enum Action: Sendable {
        case create(resource: String, size: Int?)
        case attach(resource: String, readOnly: Bool)
        /// `attach: {res, mode: private}`: a file mapped private and writable (copy-on-write): its stores never
        /// reach the file, and a page it has written no longer follows the file.
        case attachPrivate(resource: String)
        case detach(resource: String)
        /// `timeout`: how long the step waits before lock-error (nil: the scenario's timeout, filled in by the runner).
        case lock(resource: String, timeout: Duration?)
        case unlock(resource: String)
        case tryLock(resource: String)
        case add(resource: String, offset: Int, value: Int64)
        case atomicAdd(resource: String, offset: Int, value: Int64)
        case store(resource: String, offset: Int, value: StoredValue)
        case check(resource: String, offset: Int, value: StoredValue)
        /// The first half of a split read-modify-write: a plain 64-bit load into the worker's register.
        case load(resource: String, offset: Int)
        /// The second half: a plain 64-bit store of the register plus `plus`.
        case storeLoaded(resource: String, offset: Int, plus: Int64)
        /// Two u64 of one resource must be equal.
        case compare(resource: String, offset: Int, with: Int)
        case fill(resource: String, byte: UInt8)
        case checkFill(resource: String, byte: UInt8)
        case truncate(resource: String, size: Int)
        case seal(resource: String, seals: [Seal])
        case touchAll(resource: String)
        case barrier(name: String)
        case sleep(Duration)
        case repeatTimes(Int, [Step])
        case repeatFor(Duration, [Step])
        case crash(signal: Int32)
        /// Sends the resource's descriptor (SCM_RIGHTS) to every process of worker group `to`.
        case sendFD(resource: String, to: String)
        /// Waits for a descriptor sent to this worker and adopts it as the resource.
        case receiveFD(resource: String)
        /// msync(MS_SYNC) of the worker's mapping of a file.
        case sync(resource: String)
        /// Opens the file afresh and compares the bytes `read(2)` (pread) gets at `offset`: what is in the file,
        /// not what a mapping shows.
        case checkFile(resource: String, offset: Int, value: StoredValue)
        /// Semaphores: take `n` units, one at a time (Qt's acquire()), each waiting at most `timeout` (nil: the
        /// scenario's timeout, filled in by the runner) before lock-error.
        case acquire(resource: String, n: Int, timeout: Duration?)
        /// Semaphores: give back `n` units at once (Qt's release(n)).
        case release(resource: String, n: Int)
        /// Semaphores: take one unit if the count is above 0, else fail with busy.
        case tryAcquire(resource: String)
        /// Semaphores: the count must be `value`.
        case checkValue(resource: String, value: Int)
        /// The u64 at `offset` must be at most `max` (a gauge that counts who is inside).
        case checkAtMost(resource: String, offset: Int, max: UInt64)

        /// The step's name in scenario files.
        public var kind: StepKind {
            switch self {
            case .create: .create
            case .attach, .attachPrivate: .attach
            case .detach: .detach
            case .lock: .lock
            case .unlock: .unlock
            case .tryLock: .tryLock
            case .add: .add
            case .atomicAdd: .atomicAdd
            case .store: .store
            case .check: .check
            case .load: .load
            case .storeLoaded: .storeLoaded
            case .compare: .compare
            case .fill: .fill
            case .checkFill: .checkFill
            case .truncate: .truncate
            case .seal: .seal
            case .touchAll: .touchAll
            case .barrier: .barrier
            case .sleep: .sleep
            case .repeatTimes, .repeatFor: .repeat
            case .crash: .crash
            case .sendFD: .sendFD
            case .receiveFD: .receiveFD
            case .sync: .sync
            case .checkFile: .checkFile
            case .acquire: .acquire
            case .release: .release
            case .tryAcquire: .tryAcquire
            case .checkValue: .checkValue
            case .checkAtMost: .checkAtMost
            }
        }

        /// The resource the step works on, if any.
        public var resource: String? {
            switch self {
            case .create(let r, _), .attach(let r, _), .attachPrivate(let r), .detach(let r), .lock(let r, _), .unlock(let r), .tryLock(let r),
                .add(let r, _, _), .atomicAdd(let r, _, _), .store(let r, _, _), .check(let r, _, _), .fill(let r, _),
                .checkFill(let r, _), .truncate(let r, _), .seal(let r, _), .touchAll(let r), .load(let r, _),
                .storeLoaded(let r, _, _), .compare(let r, _, _), .sendFD(let r, _), .receiveFD(let r), .sync(let r), .checkFile(let r, _, _),
                .acquire(let r, _, _), .release(let r, _), .tryAcquire(let r), .checkValue(let r, _), .checkAtMost(let r, _, _):
                r
            case .barrier, .sleep, .repeatTimes, .repeatFor, .crash: nil
            }
        }
    }
}

/// The step vocabulary (the contract's table), shared by the loader, docs and the C worker cross-check.
public enum StepKind: String, Sendable, CaseIterable {
    case create, attach, detach, lock, unlock, tryLock = "try-lock", add, atomicAdd = "atomic-add", store, check, fill
    case checkFill = "check-fill", truncate, seal, touchAll = "touch-all", barrier, sleep, `repeat`, crash
    case load, storeLoaded = "store-loaded", compare
    case sendFD = "send-fd", receiveFD = "receive-fd"
    case sync, checkFile = "check-file"
    case acquire, release, tryAcquire = "try-acquire", checkValue = "check-value", checkAtMost = "check-at-most"
}

/// Signal names and numbers (Linux).
public enum Signals {
    package static let table: [(String, Int32)] = [
        ("SIGHUP", 1), ("SIGINT", 2), ("SIGQUIT", 3), ("SIGILL", 4), ("SIGTRAP", 5), ("SIGABRT", 6), ("SIGBUS", 7),
        ("SIGFPE", 8), ("SIGKILL", 9), ("SIGUSR1", 10), ("SIGSEGV", 11), ("SIGUSR2", 12), ("SIGPIPE", 13),
        ("SIGALRM", 14), ("SIGTERM", 15), ("SIGCHLD", 17), ("SIGCONT", 18), ("SIGSTOP", 19), ("SIGTSTP", 20),
        ("SIGSYS", 31),
    ]

    public static func number(_ name: String) -> Int32? {
        let upper = name.uppercased()
        let full = upper.hasPrefix("SIG") ? upper : "SIG" + upper
        return table.first { $0.0 == full }?.1
    }

    public static func name(_ number: Int32) -> String {
        table.first { $0.1 == number }?.0 ?? "signal \(number)"
    }
}
