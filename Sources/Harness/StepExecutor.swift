import Atomics
import ScenarioKit
import SharedMemoryKit
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

    public func percentile(_ p: Double) -> UInt64? {
        guard !lockLatencies.isEmpty else { return nil }
        let sorted = lockLatencies.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
        return sorted[max(0, index)]
    }
}

/// One interpreter for the step vocabulary, used by the Swift worker and by the runner's own setup.
public final class StepExecutor {
    let resources: [String: Plan.Resource]
    private var segments: [String: SharedMemory] = [:]
    private let barrier: (String) throws(StepFailure) -> Void
    public private(set) var stats = WorkerStats()
    static let maxLatencySamples = 200_000

    /// - Parameter barrier: waits at a named barrier (the worker's stdin/stdout protocol with the runner).
    public init(resources: [Plan.Resource], barrier: @escaping (String) throws(StepFailure) -> Void) {
        self.resources = Dictionary(resources.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.barrier = barrier
    }

    /// Whether this build can execute a resource of this shape (file, memfd and in-memory locks come with the
    /// file-backed sharing part of the library).
    public static func unsupportedReason(_ resource: ResourceSpec) -> String? {
        if resource.kind != .segment { return "\(resource.kind.rawValue) resources need file-backed sharing, which this build of the Swift worker does not have yet" }
        if resource.lock != .semaphore { return "lock: \(resource.lock.rawValue) needs the in-memory locks, which this build of the Swift worker does not have yet" }
        return nil
    }

    /// Runs `steps` in order; the first failing one ends the run.
    public func run(_ steps: [Step]) throws(StepFailure) {
        let start = Self.now()
        defer { stats.elapsedNanoseconds = Self.now() &- start }
        try execute(steps)
    }

    /// Detaches everything this executor still has attached (the last detach destroys, as in Qt).
    public func closeAll() {
        for (_, segment) in segments where segment.isAttached { try? segment.detach() }
        segments.removeAll()
    }

    /// The attachment a resource has here, if any (the runner reads expectations through it).
    public func segment(_ id: String) -> SharedMemory? { segments[id] }

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

    private func perform(_ step: Step) throws(StepFailure) {
        stats.operations += 1
        func fail(_ error: String, _ message: String, errno: Int32? = nil) -> StepFailure {
            StepFailure(line: step.location.line, step: step.action.kind.rawValue, error: error, message: message, errno: errno)
        }
        do throws(StepError) {
            try act(step.action)
        } catch {
            switch error {
            case .library(let error):
                guard let expected = step.expectError else {
                    throw fail(error.code.name, error.description, errno: error.underlyingError?.rawValue)
                }
                guard error.code.name == expected else {
                    throw fail(error.code.name, "expected \(expected), got \(error.code.name): \(error)", errno: error.underlyingError?.rawValue)
                }
                return
            case .mismatch(let message): throw fail("check-mismatch", message)
            case .aborted(let message): throw fail("barrier-aborted", message)
            case .unsupported(let message): throw fail("unsupported", message)
            }
        }
        if let expected = step.expectError {
            throw fail("unexpected-success", "expected \(expected), but the step succeeded")
        }
    }

    /// What a step can end in besides success.
    enum StepError: Error {
        case library(SharedMemoryError)
        case mismatch(String)
        case aborted(String)
        case unsupported(String)
    }

    // Outcomes of a step that are not library errors, set by libraryAct.
    private var mismatch: String?
    private var aborted: String?
    private var unsupported: String?

    private func act(_ action: Step.Action) throws(StepError) {
        mismatch = nil
        aborted = nil
        unsupported = nil
        do throws(SharedMemoryError) {
            try libraryAct(action)
        } catch {
            throw .library(error)
        }
        if let mismatch { throw .mismatch(mismatch) }
        if let aborted { throw .aborted(aborted) }
        if let unsupported { throw .unsupported(unsupported) }
    }

    private func memory(_ id: String) throws(StepError) -> SharedMemory {
        if let existing = segments[id] { return existing }
        guard let resource = resources[id], let keyText = resource.key, let key = NativeIPCKey(string: keyText) else {
            throw .unsupported("resource \(id) is not a keyed segment in this plan")
        }
        let segment = SharedMemory(key: key)
        segments[id] = segment
        return segment
    }

    private func libraryAct(_ action: Step.Action) throws(SharedMemoryError) {
        func memory(_ id: String) throws(SharedMemoryError) -> SharedMemory {
            do throws(StepError) {
                return try self.memory(id)
            } catch {
                throw SharedMemoryError(.keyError, operation: action.kind.rawValue, detail: "resource \(id) is not a keyed segment in this plan")
            }
        }
        switch action {
        case .create(let id, let size):
            try memory(id).create(size: size ?? resources[id]?.size ?? 0)
        case .attach(let id, let readOnly):
            try memory(id).attach(readOnly ? .readOnly : .readWrite)
        case .detach(let id):
            try memory(id).detach()
        case .lock(let id):
            let segment = try memory(id)
            let start = Self.now()
            try segment.lock()
            if stats.lockLatencies.count < Self.maxLatencySamples { stats.lockLatencies.append(Self.now() &- start) }
        case .unlock(let id):
            try memory(id).unlock()
        case .tryLock(let id):
            guard try memory(id).tryLock() else {
                throw SharedMemoryError(.busy, operation: "try-lock", object: resources[id]?.key, detail: "the lock is taken")
            }
        case .add(let id, let offset, let value):
            let p = try pointer(memory(id), id, offset: offset, length: 8, writing: true)
            let old = p.loadUnaligned(as: UInt64.self)
            p.storeBytes(of: old &+ UInt64(bitPattern: value), as: UInt64.self)
        case .atomicAdd(let id, let offset, let value):
            let p = try pointer(memory(id), id, offset: offset, length: 8, writing: true)
            guard Int(bitPattern: p) % 8 == 0 else {
                throw SharedMemoryError(.invalidSize, operation: "atomic-add", detail: "offset \(offset) is not 8-byte aligned")
            }
            let atomic = UnsafeAtomic<UInt64>(at: p.assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
            atomic.wrappingIncrement(by: UInt64(bitPattern: value), ordering: .relaxed)
        case .store(let id, let offset, let value):
            try memory(id).write(value.bytes, at: offset)
        case .check(let id, let offset, let value):
            let got = try memory(id).read(at: offset, count: value.bytes.count)
            if got != value.bytes {
                let shown: StoredValue = if case .u64 = value { .u64(got.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }) } else { .bytes(got) }
                mismatch = "at offset \(offset) of \(id): want \(value), got \(shown)"
            }
        case .fill(let id, let byte):
            let segment = try memory(id)
            try segment.write([UInt8](repeating: byte, count: segment.size), at: 0)
        case .checkFill(let id, let byte):
            let segment = try memory(id)
            let bytes = try segment.read(at: 0, count: segment.size)
            if let bad = bytes.firstIndex(where: { $0 != byte }) {
                mismatch = "at offset \(bad) of \(id): want byte \(byte), got \(bytes[bad])"
            }
        case .touchAll(let id):
            let segment = try memory(id)
            guard let data = segment.data else { throw SharedMemoryError(.notFound, operation: "touch-all", detail: "not attached") }
            var sum: UInt8 = 0
            for offset in stride(from: 0, to: data.count, by: 4096) { sum &+= data.load(fromByteOffset: offset, as: UInt8.self) }
            withExtendedLifetime(sum) {}
        case .truncate, .seal:
            unsupported = "\(action.kind.rawValue) needs file-backed sharing, which this build does not have yet"
        case .barrier(let name):
            do throws(StepFailure) {
                try barrier(name)
            } catch {
                aborted = error.message
            }
        case .sleep(let duration):
            var request = timespec(tv_sec: Int(duration.nanoseconds / 1_000_000_000), tv_nsec: Int(duration.nanoseconds % 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
        case .crash(let signal):
            fflush(nil)
            kill(getpid(), signal)
            _exit(128 + signal)
        case .repeatTimes, .repeatFor:
            break
        }
    }

    private func pointer(_ segment: SharedMemory, _ id: String, offset: Int, length: Int, writing: Bool) throws(SharedMemoryError) -> UnsafeMutableRawPointer {
        guard let data = segment.data else { throw SharedMemoryError(.notFound, operation: "access", object: resources[id]?.key, detail: "not attached") }
        if writing && segment.accessMode == .readOnly {
            throw SharedMemoryError(.permissionDenied, operation: "access", object: resources[id]?.key, detail: "attached read-only")
        }
        guard offset >= 0, offset <= data.count - length else {
            throw SharedMemoryError(.invalidSize, operation: "access", object: resources[id]?.key, detail: "offset \(offset)+\(length) is outside \(data.count) bytes")
        }
        return data.baseAddress! + offset
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
