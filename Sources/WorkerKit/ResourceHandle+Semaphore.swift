import SharedMemoryKit

/// A `kind: semaphore` resource: a keyed system semaphore (``SystemSemaphore``, QSystemSemaphore's semantics).
/// `create` opens it in Create mode with the resource's initial count, `attach` in Open mode (which, as in Qt,
/// makes a missing one with the initial count), `detach` closes it (the last user of this library removes it).
final class SemaphoreHandle: ResourceHandle {
    private var semaphore: SystemSemaphore?

    private func key(_ operation: String) throws(SharedMemoryError) -> NativeIPCKey {
        guard let text = spec.key, let key = NativeIPCKey(string: text) else {
            throw SharedMemoryError(.keyError, operation: operation, detail: "resource \(spec.id) has no key in the plan")
        }
        return key
    }

    private func open(_ mode: SystemSemaphore.AccessMode, _ operation: String) throws(SharedMemoryError) {
        guard semaphore == nil else {
            throw SharedMemoryError(.alreadyExists, operation: operation, object: objectName, detail: "the semaphore is open already")
        }
        semaphore = try SystemSemaphore(key: try key(operation), initialValue: spec.initial ?? 0, mode: mode)
    }

    override func createObject(size: Int) throws(SharedMemoryError) { try open(.create, "create") }
    override func attachObject(readOnly: Bool) throws(SharedMemoryError) { try open(.open, "attach") }
    override func detachObject() throws(SharedMemoryError) {
        guard let semaphore else {
            throw SharedMemoryError(.notFound, operation: "detach", object: objectName, detail: "the semaphore is not open")
        }
        semaphore.close(removeIfUnused: true)
        self.semaphore = nil
    }

    override func close() {
        semaphore?.close(removeIfUnused: true)
        semaphore = nil
    }

    func opened(_ operation: String) throws(SharedMemoryError) -> SystemSemaphore {
        guard let semaphore else {
            throw SharedMemoryError(.notFound, operation: operation, object: objectName, detail: "the semaphore is not open (create or attach it first)")
        }
        return semaphore
    }
}

extension StepExecutor {
    /// The semaphore steps; nil when `action` is not one of them.
    func semaphoreStep(_ action: Step.Action, _ handle: (String) throws(Outcome) -> ResourceHandle) throws(Outcome) -> Bool {
        func semaphore(_ id: String, _ operation: String) throws(Outcome) -> SystemSemaphore {
            guard let h = try handle(id) as? SemaphoreHandle else {
                throw .library(SharedMemoryError(.keyError, operation: operation, detail: "resource \(id) is not a semaphore"))
            }
            do throws(SharedMemoryError) { return try h.opened(operation) } catch { throw .library(error) }
        }
        func library<T>(_ body: () throws(SharedMemoryError) -> T) throws(Outcome) -> T {
            do throws(SharedMemoryError) { return try body() } catch { throw .library(error) }
        }
        switch action {
        case .acquire(let id, let n, let timeout):
            let s = try semaphore(id, "acquire")
            // n units one at a time, all or nothing: a failure gives back the ones taken.
            for taken in 0..<n {
                do throws(Outcome) {
                    try library { () throws(SharedMemoryError) in try s.acquire(timeout: timeout) }
                } catch {
                    if taken > 0 { try? s.release(taken) }
                    throw error
                }
            }
        case .release(let id, let n):
            let s = try semaphore(id, "release")
            try library { () throws(SharedMemoryError) in try s.release(n) }
        case .tryAcquire(let id):
            let s = try semaphore(id, "try-acquire")
            if !(try library { () throws(SharedMemoryError) in try s.tryAcquire() }) {
                throw .library(SharedMemoryError(.busy, operation: "try-acquire", object: s.key.toString(), detail: "the count is 0"))
            }
        case .checkValue(let id, let value):
            let s = try semaphore(id, "check-value")
            let got = try library { () throws(SharedMemoryError) in try s.value() }
            if got != value { throw .mismatch("semaphore \(id): want count \(value), got \(got)") }
        case .checkAtMost(let id, let offset, let max):
            let r = try handle(id)
            let bytes = try library { () throws(SharedMemoryError) in try r.read(at: offset, count: 8) }
            let got = Self.littleEndian(bytes)
            if got > max { throw .mismatch("at offset \(offset) of \(id): u64 \(got) is more than \(max)") }
        default:
            return false
        }
        return true
    }
}
