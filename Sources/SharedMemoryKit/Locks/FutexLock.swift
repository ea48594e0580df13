import Atomics
import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A lock word inside shared memory (kind 1 of docs/lock-layout.md): Drepper's three-state futex mutex.
///
/// Uncontended ``lock()`` and ``unlock()`` are one atomic instruction each, with no system call; a waiter
/// sleeps in `FUTEX_WAIT` (the shared futex, the word may be in any `MAP_SHARED` mapping) and the unlocker
/// wakes one with `FUTEX_WAKE`. A holder that dies leaves the lock taken: use ``lock(timeout:)`` where that
/// matters, or ``RobustMutex``, which survives it.
///
/// The lock keeps pointers into the memory: keep the mapping alive while you use it.
///
///     let mapping = try file.map()
///     let lock = try FutexLock(initializingAt: 0, in: mapping.bytes)   // the creator, once
///     let same = try FutexLock(at: 0, in: mapping.bytes)               // everyone else
///     try same.lock(); defer { try? same.unlock() }
public struct FutexLock: @unchecked Sendable {
    private let area: UnsafeMutableRawPointer
    @usableFromInline let word: UnsafeAtomic<UInt32>
    @usableFromInline let owner: UnsafeAtomic<UInt32>

    private init(area: UnsafeMutableRawPointer) {
        self.area = area
        let fields = area + LockAreaLayout.lockOffset
        word = UnsafeAtomic(at: fields.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
        owner = UnsafeAtomic(at: (fields + 4).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    /// Initialises a lock area at `offset` in `memory` (zero-fill, free lock, kind, then magic) and returns
    /// the lock. Only the creator of the memory does this, once, before anyone else uses the lock.
    ///
    /// - Throws: `invalidSize` when the offset is not a multiple of 8 or the 64 bytes do not fit.
    public init(initializingAt offset: Int = 0, in memory: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        let site = CallSite(operation: "initialize lock", object: "futex lock at \(offset)")
        let area = try LockArea.locate(offset, in: memory, site: site)
        try LockArea.initialize(area, kind: .futex, site: site) { _ throws(SharedMemoryError) in }
        self.init(area: area)
    }

    /// The lock area another process initialised at `offset` in `memory`.
    ///
    /// - Throws: `lockError` when the area is not initialised or holds another kind of lock.
    public init(at offset: Int = 0, in memory: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        let site = CallSite(operation: "open lock", object: "futex lock at \(offset)")
        let area = try LockArea.locate(offset, in: memory, site: site)
        try LockArea.check(area, kind: .futex, site: site)
        self.init(area: area)
    }

    /// Waits for the lock without a time limit.
    ///
    /// The corresponding C function is `futex(FUTEX_WAIT_BITSET)`, only when the lock is taken.
    @inlinable
    public func lock() throws(SharedMemoryError) {
        // The uncontended case inline (in the caller too); waiting (and any error context) out of line.
        if word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            recordHolder()
            return
        }
        try acquire(deadline: -1, timeout: nil)
    }

    /// Waits for the lock at most `timeout`.
    ///
    /// - Throws: `lockError` with `ETIMEDOUT` when the time is up.
    ///
    /// The corresponding C function is `futex(FUTEX_WAIT_BITSET)` with a `CLOCK_MONOTONIC` deadline.
    public func lock(timeout: Duration) throws(SharedMemoryError) {
        // The uncontended case first, as lock() does: no clock read, no deadline arithmetic.
        if word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            recordHolder()
            return
        }
        try acquire(deadline: shm_shim_monotonic_ns() &+ nanoseconds(timeout), timeout: timeout)
    }

    /// Takes the lock if it is free. - Throws: `busy` when it is taken.
    public func tryLock() throws(SharedMemoryError) {
        guard word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged else {
            throw site("try-lock").refusal(.busy, "the lock is held (by pid \(owner.load(ordering: .relaxed)))")
        }
        recordHolder()
    }

    /// Releases the lock, waking one waiter if there may be any.
    ///
    /// - Throws: `lockError` when the lock is not taken.
    ///
    /// The corresponding C function is `futex(FUTEX_WAKE)`, only when somebody may be waiting.
    @inlinable
    public func unlock() throws(SharedMemoryError) {
        guard word.load(ordering: .relaxed) != 0 else { throw notHeld() }
        if word.loadThenWrappingDecrement(ordering: .releasing) != 1 { try wake() }
    }

    @inline(never) @usableFromInline
    func notHeld() -> SharedMemoryError { site("unlock").refusal(.lockError, "the lock is not held") }

    /// The contended unlock: free the word and wake one waiter.
    @inline(never) @usableFromInline
    func wake() throws(SharedMemoryError) {
        word.store(0, ordering: .releasing)
        let pointer = wordPointer
        _ = try site("unlock").check("futex(FUTEX_WAKE)") { shm_shim_futex_wake(pointer, 1) }
    }

    /// Whether the lock is taken now (a snapshot).
    public var isLocked: Bool { word.load(ordering: .relaxed) != 0 }

    /// The pid the holder recorded, if the lock is taken (informational: the last process that took it,
    /// recorded right after taking it).
    public var ownerPID: pid_t? {
        guard word.load(ordering: .relaxed) != 0 else { return nil }
        let pid = owner.load(ordering: .relaxed)
        return pid == 0 ? nil : pid_t(bitPattern: pid)
    }

    /// Records this process as the holder, only if another one is recorded: a store right before the next
    /// locked instruction would make it wait for the store buffer, so a process that re-locks writes nothing.
    @inlinable @inline(__always)
    func recordHolder() {
        let pid = UInt32(bitPattern: shm_shim_pid())
        if owner.load(ordering: .relaxed) != pid { owner.store(pid, ordering: .relaxed) }
    }

    private var wordPointer: UnsafeMutablePointer<UInt32> {
        (area + LockAreaLayout.lockOffset).assumingMemoryBound(to: UInt32.self)
    }

    private func site(_ operation: String) -> CallSite { CallSite(operation: operation, object: "futex lock") }

    @inline(never) @usableFromInline
    func acquire(deadline: Int64, timeout: Duration?) throws(SharedMemoryError) {
        var current = word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).original
        if current != 0 {
            if current != 2 { current = word.exchange(2, ordering: .acquiring) }
            let pointer = wordPointer
            while current != 0 {
                switch valueOrErrno(retryOnInterrupt: false, { shm_shim_futex_wait(pointer, 2, deadline) }) {
                case .success, .failure(.resourceTemporarilyUnavailable), .failure(.interrupted): break
                case .failure(.timedOut):
                    // One last try: the holder may have released just now.
                    current = word.compareExchange(expected: 0, desired: 2, ordering: .acquiring).original
                    if current == 0 { break }
                    throw site("lock").error(
                        "futex(FUTEX_WAIT_BITSET)", .timedOut,
                        detail: "not acquired within \(timeout.map { "\($0)" } ?? "the time limit"); "
                            + "held by pid \(owner.load(ordering: .relaxed))")
                case .failure(let err): throw site("lock").error("futex(FUTEX_WAIT_BITSET)", err)
                }
                if current == 0 { break }
                current = word.exchange(2, ordering: .acquiring)
            }
        }
        recordHolder()
    }
}
