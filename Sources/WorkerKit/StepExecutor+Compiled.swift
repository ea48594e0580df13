import CShmShim
import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The hot loop: a step list decoded once into a flat array, with the resource of each lock, unlock,
/// try-lock, add and atomic-add resolved up front (no dictionary lookup, no string work, no copy of the step
/// per iteration). Every other step, and any step with `expect-error`, runs through `perform(_:)` as written;
/// a step added to the vocabulary needs nothing here. The hot steps do exactly what `perform(_:)` does for them
/// (the same library calls, counters, latency samples, and errors: kind, line, message, errno).
extension StepExecutor {
    /// Plain data (no reference counting when the loop reads one): the handle is unretained (the executor's
    /// `handles` keep every handle alive), a general step is an index into `general`.
    struct CompiledStep {
        enum Kind { case lock, unlock, tryLock, add, atomicAdd, repeatTimes, repeatFor, general }
        var kind: Kind
        var handle: Unmanaged<ResourceHandle>?
        var line: Int
        var offset = 0
        var value: Int64 = 0
        var timeout: Duration? = nil
        /// repeat: times, or the nanoseconds of `for`.
        var count = 0
        /// repeat: the index after its body.
        var bodyEnd = 0
        /// general: the step's index in `general`.
        var general = 0
    }

    /// Runs `steps` in order through the compiled form; the first failing one ends the run.
    func executeCompiled(_ steps: [Step]) throws(StepFailure) {
        var compiled: [CompiledStep] = []
        var general: [Step] = []
        compile(steps, into: &compiled, general: &general)
        try compiled.withUnsafeBufferPointer { (ops) throws(StepFailure) in try run(ops, 0..<ops.count, general) }
    }

    private func compile(_ steps: [Step], into ops: inout [CompiledStep], general: inout [Step]) {
        for step in steps {
            let line = step.location.line
            switch step.action {
            case .repeatTimes(let n, let body):
                let index = ops.count
                ops.append(CompiledStep(kind: .repeatTimes, line: line, count: n))
                compile(body, into: &ops, general: &general)
                ops[index].bodyEnd = ops.count
                continue
            case .repeatFor(let duration, let body):
                let index = ops.count
                ops.append(CompiledStep(kind: .repeatFor, line: line, count: Int(max(0, duration.nanoseconds))))
                compile(body, into: &ops, general: &general)
                ops[index].bodyEnd = ops.count
                continue
            default: break
            }
            // A missing resource, an expected error (one, or a list of outcomes) or a tally: the general path
            // says and counts it the usual way.
            guard step.expectError == nil, step.outcomes == nil, step.count == nil, let id = step.action.resource, let resolved = handles[id] else {
                ops.append(CompiledStep(kind: .general, line: line, general: general.count))
                general.append(step)
                continue
            }
            let handle = Unmanaged.passUnretained(resolved)
            switch step.action {
            case .lock(_, let timeout): ops.append(CompiledStep(kind: .lock, handle: handle, line: line, timeout: timeout))
            case .unlock: ops.append(CompiledStep(kind: .unlock, handle: handle, line: line))
            case .tryLock: ops.append(CompiledStep(kind: .tryLock, handle: handle, line: line))
            case .add(_, let offset, let value): ops.append(CompiledStep(kind: .add, handle: handle, line: line, offset: offset, value: value))
            case .atomicAdd(_, let offset, let value):
                ops.append(CompiledStep(kind: .atomicAdd, handle: handle, line: line, offset: offset, value: value))
            default:
                ops.append(CompiledStep(kind: .general, line: line, general: general.count))
                general.append(step)
            }
        }
    }

    private func run(_ ops: UnsafeBufferPointer<CompiledStep>, _ range: Range<Int>, _ general: [Step]) throws(StepFailure) {
        var index = range.lowerBound
        while index < range.upperBound {
            let op = ops[index]
            switch op.kind {
            case .repeatTimes:
                for _ in 0..<op.count { try run(ops, (index + 1)..<op.bodyEnd, general) }
                index = op.bodyEnd
                continue
            case .repeatFor:
                let end = Self.now() &+ UInt64(op.count)
                while Self.now() < end { try run(ops, (index + 1)..<op.bodyEnd, general) }
                index = op.bodyEnd
                continue
            case .general:
                try perform(general[op.general])
            default:
                try performHot(op)
            }
            index += 1
        }
    }

    /// lock, unlock, try-lock, add, atomic-add without `expect-error`, on a resource of the plan.
    private func performHot(_ op: CompiledStep) throws(StepFailure) {
        stats.operations += 1
        shm_shim_set_current_step_line(Int32(truncatingIfNeeded: op.line))
        var failure: StepFailure?
        op.handle!._withUnsafeGuaranteedRef { r in
            do throws(StepFailure) { try performHot(op, on: r) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    private func performHot(_ op: CompiledStep, on r: ResourceHandle) throws(StepFailure) {
        do throws(SharedMemoryError) {
            switch op.kind {
            case .lock:
                let start = Self.now()
                _ = try r.lock(.lock, timeout: op.timeout)
                if stats.lockLatencies.count < Self.maxLatencySamples { stats.lockLatencies.append(Self.now() &- start) }
            case .unlock:
                _ = try r.lock(.unlock)
            case .tryLock:
                if !(try r.lock(.tryLock)) {
                    throw SharedMemoryError(.busy, operation: "try-lock", object: r.objectName, detail: "the lock is taken")
                }
            case .add:
                let p = try r.pointer(offset: op.offset, length: 8)
                try r.guardedAdd(UInt64(bitPattern: op.value), at: p, atomic: false)
            case .atomicAdd:
                let p = try r.pointer(offset: op.offset, length: 8)
                guard Int(bitPattern: p) % 8 == 0 else {
                    throw SharedMemoryError(.invalidSize, operation: "atomic-add", detail: "offset \(op.offset) is not 8-byte aligned")
                }
                try r.guardedAdd(UInt64(bitPattern: op.value), at: p, atomic: true)
            case .repeatTimes, .repeatFor, .general:
                break
            }
        } catch {
            let kind: StepKind = switch op.kind {
            case .lock: .lock
            case .unlock: .unlock
            case .tryLock: .tryLock
            case .add: .add
            default: .atomicAdd
            }
            throw StepFailure(line: op.line, step: kind.rawValue, error: error.code.name, message: error.description, errno: error.underlyingError?.rawValue)
        }
    }
}
