import Atomics
import SharedMemoryKit
import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Why a step failed a worker: which step, what was expected, what happened.
public struct StepFailure: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var step: String
    /// The error name (`not-found`), or `check-mismatch`, `unexpected-success`, `barrier-aborted`, `unsupported`.
    public var error: String
    public var message: String
    public var errno: Int32?

    public var description: String { "line \(line) (\(step)): \(error): \(message)" }
}

/// Counts and lock latencies a worker records.
public struct WorkerStats: Sendable {
    public var operations = 0
    public var lockLatencies: [UInt64] = []
    public var elapsedNanoseconds: UInt64 = 0
    /// `count: NAME` steps: counter -> outcome (`ok` or an error name) -> how many times.
    public var tallies: [String: [String: Int]] = [:]

    /// The p-th percentile (sorted samples, index ceil(n·p) − 1), as the C worker computes it.
    public func percentile(_ p: Double, sorted isSorted: Bool = false) -> UInt64? {
        guard !lockLatencies.isEmpty else { return nil }
        let sorted = isSorted ? lockLatencies : lockLatencies.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
        return sorted[max(0, index)]
    }
}

/// One interpreter for the step vocabulary, used by the Swift worker and by the runner's own setup.
public final class StepExecutor {
    var handles: [String: ResourceHandle] = [:]
    private let barrier: (String) throws(StepFailure) -> Void
    public internal(set) var stats = WorkerStats()
    /// What the last `load` read, for `store-loaded`; nil before any load.
    private var loaded: UInt64?
    /// Sockets to other workers, for `send-fd` / `receive-fd`.
    public var channels = DescriptorChannels([])
    static let maxLatencySamples = 200_000

    /// What a step can end in besides success.
    enum Outcome: Error {
        case library(SharedMemoryError)
        case mismatch(String)
        case aborted(String)
        case unsupported(String)
    }

    /// - Parameter barrier: waits at a named barrier (the worker's stdin/stdout protocol with the runner).
    public init(resources: [Plan.Resource], barrier: @escaping (String) throws(StepFailure) -> Void) {
        for resource in resources { handles[resource.id] = ResourceHandle.make(resource) }
        self.barrier = barrier
    }

    /// For the runner: handles it made itself (a memfd it created).
    package init(handles: [ResourceHandle], barrier: @escaping (String) throws(StepFailure) -> Void) {
        for handle in handles { self.handles[handle.spec.id] = handle }
        self.barrier = barrier
    }

    /// Runs `steps` in order; the first failing one ends the run.
    public func run(_ steps: [Step]) throws(StepFailure) {
        let start = Self.now()
        defer { stats.elapsedNanoseconds = Self.now() &- start }
        try executeCompiled(steps)
    }

    /// Detaches and closes everything (the last detach of a segment destroys it, as in Qt) but a mapping whose
    /// robust mutex this process still holds: that one stays until the process ends, so that the kernel can mark
    /// the mutex owner-died for the next locker.
    /// - Parameter takingLocks: false when no other process can be using the resources any more (the runner's
    ///   teardown after every worker ended): detaching then never waits for a segment's lock.
    public func closeAll(takingLocks: Bool = true) {
        for (_, handle) in handles {
            if !takingLocks { handle.takesLocks = false }
            if handle.holdsRobustMutex {
                _ = Unmanaged.passRetained(handle)  // never unmapped by a deinit: the process exit releases it
            } else {
                handle.close()
            }
        }
    }

    package func handle(_ id: String) -> ResourceHandle? { handles[id] }

    private func execute(_ steps: [Step]) throws(StepFailure) {
        for step in steps {
            switch step.action {
            case .repeatTimes(let n, let body):
                for _ in 0..<n { try execute(body) }
            case .repeatFor(let duration, let body):
                let end = Self.now() &+ UInt64(max(0, duration.nanoseconds))
                while Self.now() < end { try execute(body) }
            default:
                try perform(step)
            }
        }
    }

    /// One step, judged against its `expect-error`.
    func perform(_ step: Step) throws(StepFailure) {
        stats.operations += 1
        shm_shim_set_current_step_line(Int32(truncatingIfNeeded: step.location.line))
        func fail(_ error: String, _ message: String, errno: Int32? = nil) -> StepFailure {
            StepFailure(line: step.location.line, step: step.action.kind.rawValue, error: error, message: message, errno: errno)
        }
        do throws(Outcome) {
            try act(step.action)
        } catch {
            switch error {
            case .library(let error):
                let errno = error.underlyingError?.rawValue
                guard let expected = step.expectationText else { throw fail(error.code.name, error.description, errno: errno) }
                guard step.accepts(error.code.name) else {
                    throw fail(error.code.name, "expected \(expected), got \(error.code.name): \(error)", errno: errno)
                }
                if let name = step.count { stats.tallies[name, default: [:]][error.code.name, default: 0] += 1 }
                return
            case .mismatch(let message): throw fail("check-mismatch", message)
            case .aborted(let message): throw fail("barrier-aborted", message)
            case .unsupported(let message): throw fail("unsupported", message)
            }
        }
        guard step.accepts(OutcomeName.ok) else {
            throw fail("unexpected-success", "expected \(step.expectationText ?? "success"), but the step succeeded")
        }
        if let name = step.count { stats.tallies[name, default: [:]][OutcomeName.ok, default: 0] += 1 }
    }

    private func resource(_ id: String) throws(Outcome) -> ResourceHandle {
        guard let handle = handles[id] else {
            throw .library(SharedMemoryError(.keyError, operation: "resource", detail: "no resource \(id) in this plan"))
        }
        return handle
    }

    /// Runs a library call, turning its error into an outcome.
    private func library<T>(_ body: () throws(SharedMemoryError) -> T) throws(Outcome) -> T {
        do throws(SharedMemoryError) { return try body() } catch { throw .library(error) }
    }

    private func act(_ action: Step.Action) throws(Outcome) {
        switch action {
        case .create(let id, let size):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.create(size: size) }
        case .attach(let id, let readOnly):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.attach(readOnly: readOnly) }
        case .attachPrivate(let id):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.attach(readOnly: false, private: true) }
        case .detach(let id):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.detach() }
        case .lock(let id, let timeout):
            let r = try resource(id)
            let start = Self.now()
            _ = try library { () throws(SharedMemoryError) in try r.lock(.lock, timeout: timeout) }
            if stats.lockLatencies.count < Self.maxLatencySamples { stats.lockLatencies.append(Self.now() &- start) }
        case .unlock(let id):
            let r = try resource(id)
            _ = try library { () throws(SharedMemoryError) in try r.lock(.unlock) }
        case .tryLock(let id):
            let r = try resource(id)
            let taken = try library { () throws(SharedMemoryError) in try r.lock(.tryLock) }
            if !taken { throw .library(SharedMemoryError(.busy, operation: "try-lock", object: r.objectName, detail: "the lock is taken")) }
        case .add(let id, let offset, let value):
            // Under the SIGBUS guard: another process may shrink the memory (a POSIX segment's file too).
            let r = try resource(id)
            let p = try library { () throws(SharedMemoryError) in try r.pointer(offset: offset, length: 8) }
            try library { () throws(SharedMemoryError) in try r.guardedAdd(UInt64(bitPattern: value), at: p, atomic: false) }
        case .load(let id, let offset):
            let r = try resource(id)
            let p = try library { () throws(SharedMemoryError) in try r.pointer(offset: offset, length: 8) }
            loaded = shm_shim_plain_load_u64(p)
        case .storeLoaded(let id, let offset, let plus):
            let r = try resource(id)
            guard let value = loaded else { throw .unsupported("store-loaded before any load: nothing was loaded") }
            let p = try library { () throws(SharedMemoryError) in try r.pointer(offset: offset, length: 8) }
            shm_shim_plain_store_u64(p, value &+ UInt64(bitPattern: plus))
        case .compare(let id, let offset, let other):
            let r = try resource(id)
            let a = try library { () throws(SharedMemoryError) in try r.read(at: offset, count: 8) }
            let b = try library { () throws(SharedMemoryError) in try r.read(at: other, count: 8) }
            if a != b {
                throw .mismatch("at offset \(offset) of \(id): u64 \(Self.littleEndian(a)), but at offset \(other): u64 \(Self.littleEndian(b))")
            }
        case .atomicAdd(let id, let offset, let value):
            let r = try resource(id)
            let p = try library { () throws(SharedMemoryError) in try r.pointer(offset: offset, length: 8) }
            guard Int(bitPattern: p) % 8 == 0 else {
                throw .library(SharedMemoryError(.invalidSize, operation: "atomic-add", detail: "offset \(offset) is not 8-byte aligned"))
            }
            try library { () throws(SharedMemoryError) in try r.guardedAdd(UInt64(bitPattern: value), at: p, atomic: true) }
        case .store(let id, let offset, let value):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.write(value.bytes, at: offset) }
        case .check(let id, let offset, let value):
            let r = try resource(id)
            let got = try library { () throws(SharedMemoryError) in try r.read(at: offset, count: value.bytes.count) }
            if got != value.bytes {
                let shown: StoredValue = if case .u64 = value { .u64(Self.littleEndian(got)) } else { .bytes(got) }
                throw .mismatch("at offset \(offset) of \(id): want \(value), got \(shown)")
            }
        case .fill(let id, let byte):
            let r = try resource(id)
            guard r.bytes != nil else { throw .library(SharedMemoryError(.notFound, operation: "fill", object: r.objectName, detail: "not attached")) }
            for range in r.dataRanges {
                try library { () throws(SharedMemoryError) in try r.write([UInt8](repeating: byte, count: range.count), at: range.lowerBound) }
            }
        case .checkFill(let id, let byte):
            let r = try resource(id)
            guard r.bytes != nil else { throw .library(SharedMemoryError(.notFound, operation: "check-fill", object: r.objectName, detail: "not attached")) }
            for range in r.dataRanges {
                let bytes = try library { () throws(SharedMemoryError) in try r.read(at: range.lowerBound, count: range.count) }
                if let bad = bytes.firstIndex(where: { $0 != byte }) {
                    throw .mismatch("at offset \(range.lowerBound + bad) of \(id): want byte \(byte), got \(bytes[bad])")
                }
            }
        case .touchAll(let id):
            // Plain loads, unguarded: after a shrink the worker dies of SIGBUS, as a scenario may expect.
            let r = try resource(id)
            guard let data = r.bytes else { throw .library(SharedMemoryError(.notFound, operation: "touch-all", detail: "not attached")) }
            // Volatile loads in the shim: the optimizer cannot drop them (it did drop plain Swift loads in -c release).
            _ = shm_shim_touch_every(data.baseAddress, data.count, 4096)
        case .truncate(let id, let size):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.truncate(to: size) }
        case .seal(let id, let seals):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.seal(seals) }
        case .barrier(let name):
            do throws(StepFailure) { try barrier(name) } catch { throw .aborted(error.message) }
        case .sleep(let duration):
            var request = timespec(tv_sec: Int(duration.nanoseconds / 1_000_000_000), tv_nsec: Int(duration.nanoseconds % 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
        case .crash(let signal):
            fflush(nil)
            kill(getpid(), signal)
            _exit(128 + signal)
        case .sendFD(let id, let group):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try channels.send(r, to: group) }
        case .receiveFD(let id):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try channels.receive(into: r) }
        case .sync(let id):
            let r = try resource(id)
            try library { () throws(SharedMemoryError) in try r.sync() }
        case .checkFile(let id, let offset, let value):
            let r = try resource(id)
            let got = try library { () throws(SharedMemoryError) in try r.readFile(at: offset, count: value.bytes.count) }
            if got != value.bytes {
                let shown: StoredValue = if case .u64 = value { .u64(Self.littleEndian(got)) } else { .bytes(got) }
                throw .mismatch("in the file of \(id) at offset \(offset) (read(2)): want \(value), got \(shown)")
            }
        case .repeatTimes, .repeatFor:
            break
        case .acquire, .release, .tryAcquire, .checkValue, .checkAtMost:
            _ = try semaphoreStep(action) { (id: String) throws(Outcome) in try resource(id) }
        }
    }

    package static func littleEndian(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    static func now() -> UInt64 { UInt64(shm_shim_monotonic_ns()) }
}
