import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A process-shared robust pthread mutex inside shared memory (kind 2 of docs/lock-layout.md).
///
/// When a holder dies (even by `SIGKILL`), the kernel hands the mutex to the next locker, whose
/// ``lock()`` throws ``SharedMemoryError/Code/ownerDied``: **that caller holds the mutex**. It repairs the
/// protected data, calls ``markConsistent()``, then ``unlock()``. Unlocking without ``markConsistent()``
/// makes the mutex unusable for everyone (`ENOTRECOVERABLE`, reported as `lockError`).
///
///     do {
///         try mutex.lock()
///     } catch let error where error.code == .ownerDied {
///         repair()                      // the previous holder died half-way
///         try mutex.markConsistent()
///     }
///     defer { try? mutex.unlock() }
///
/// The mutex belongs to the locking thread: unlock on the thread that locked. Keep the mapping alive while
/// you use it.
public struct RobustMutex: @unchecked Sendable {
    private let mutex: UnsafeMutableRawPointer

    private init(area: UnsafeMutableRawPointer) { mutex = area + LockAreaLayout.lockOffset }

    /// Whether glibc's `pthread_mutex_t` fits the 48 bytes of the lock area here (40 on x86_64, 48 on aarch64).
    public static var fitsLockArea: Bool {
        shm_shim_pthread_mutex_size() <= LockAreaLayout.size - LockAreaLayout.lockOffset
            && shm_shim_pthread_mutex_alignment() <= 8
    }

    /// Initialises a lock area at `offset` in `memory` with a robust, process-shared, normal mutex and
    /// returns it. Only the creator of the memory does this, once, before anyone else uses the lock.
    ///
    /// The corresponding C function is `pthread_mutex_init` (`PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST`).
    public init(initializingAt offset: Int = 0, in memory: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        let site = CallSite(operation: "initialize lock", object: "robust mutex at \(offset)")
        guard Self.fitsLockArea else {
            throw site.refusal(.lockError, "pthread_mutex_t is \(shm_shim_pthread_mutex_size()) bytes; the area holds 48")
        }
        let area = try LockArea.locate(offset, in: memory, site: site)
        try LockArea.initialize(area, kind: .robustMutex, site: site) { (lock) throws(SharedMemoryError) in
            _ = try site.check("pthread_mutex_init") { shm_shim_robust_mutex_init(lock) }
        }
        self.init(area: area)
    }

    /// The lock area another process initialised at `offset` in `memory`.
    ///
    /// - Throws: `lockError` when the area is not initialised or holds another kind of lock.
    public init(at offset: Int = 0, in memory: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        let site = CallSite(operation: "open lock", object: "robust mutex at \(offset)")
        let area = try LockArea.locate(offset, in: memory, site: site)
        try LockArea.check(area, kind: .robustMutex, site: site)
        self.init(area: area)
    }

    /// Waits for the mutex without a time limit.
    ///
    /// - Throws: `ownerDied` (with `EOWNERDEAD`) when the previous holder died: the caller **holds** the
    ///   mutex and must repair, ``markConsistent()``, then ``unlock()``; `lockError` when the mutex is
    ///   unrecoverable or this thread already holds it (`EDEADLK`).
    ///
    /// The corresponding C function is `pthread_mutex_lock`.
    public func lock() throws(SharedMemoryError) {
        try acquire(-1, "lock", "pthread_mutex_lock", refinement: .lock)
    }

    /// Waits for the mutex at most `timeout`.
    ///
    /// - Throws: `lockError` with `ETIMEDOUT` when the time is up; `ownerDied` as ``lock()``.
    ///
    /// The corresponding C function is `pthread_mutex_clocklock` (`CLOCK_MONOTONIC`).
    public func lock(timeout: Duration) throws(SharedMemoryError) {
        try acquire(max(nanoseconds(timeout), 1), "lock", "pthread_mutex_clocklock", refinement: .lock)
    }

    /// Takes the mutex if it is free.
    ///
    /// - Throws: `busy` when it is held; `ownerDied` as ``lock()`` (the caller then holds it).
    ///
    /// The corresponding C function is `pthread_mutex_trylock`.
    public func tryLock() throws(SharedMemoryError) {
        try acquire(0, "try-lock", "pthread_mutex_trylock", refinement: .tryLock)
    }

    /// Marks the state protected by a mutex whose owner died as repaired; call it after an `ownerDied`
    /// lock, before ``unlock()``.
    ///
    /// The corresponding C function is `pthread_mutex_consistent`.
    public func markConsistent() throws(SharedMemoryError) {
        let mutex = self.mutex
        _ = try site("mark consistent").check(
            "pthread_mutex_consistent", refinement: .lock, einval: .lockError, detail: "only after owner-died"
        ) {
            shm_shim_robust_mutex_consistent(mutex)
        }
    }

    /// Releases the mutex. - Throws: `lockError` when this thread does not hold it (`EPERM`).
    ///
    /// The corresponding C function is `pthread_mutex_unlock`.
    public func unlock() throws(SharedMemoryError) {
        let mutex = self.mutex
        // The error context is built only on failure.
        if case .failure(let err) = valueOrErrno({ shm_shim_robust_mutex_unlock(mutex) }) {
            throw site("unlock").error("pthread_mutex_unlock", err, refinement: .lock)
        }
    }

    private func site(_ operation: String) -> CallSite { CallSite(operation: operation, object: "robust mutex") }

    private func acquire(
        _ timeoutNanoseconds: Int64, _ operation: String, _ call: String, refinement: ErrnoMapping.Refinement
    ) throws(SharedMemoryError) {
        let mutex = self.mutex
        switch valueOrErrno(retryOnInterrupt: true, { shm_shim_robust_mutex_lock(mutex, timeoutNanoseconds) }) {
        case .success: return
        case .failure(.previousOwnerDied):
            throw site(operation).error(
                call, .previousOwnerDied, refinement: refinement,
                detail: "the previous holder died; you hold the mutex: repair the data, markConsistent(), unlock()")
        case .failure(let err):
            throw site(operation).error(call, err, refinement: refinement)
        }
    }
}
