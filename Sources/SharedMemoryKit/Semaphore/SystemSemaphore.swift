import CShmShim

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A counting semaphore shared between processes by key, interoperable with Qt's `QSystemSemaphore`
/// on both Unix backends (System V and POSIX named semaphores).
///
/// What it does as Qt does: the same key files and `ftok` ids, permissions 0600, `SEM_UNDO` on every System V
/// operation, the object is made (or opened) at construction, `.open` on a missing semaphore creates it with
/// `initialValue`.
///
/// Where it differs, on purpose (see the README):
/// - `.create` on an existing semaphore never resets its value (Qt's `SETVAL`/`sem_unlink` breaks the
///   mutual exclusion of the processes already using it).
/// - It is removed when the *last process using this library* closes it, and only if this library created it;
///   Qt's owner removes it while others still use it. Qt-created semaphores are left to Qt.
/// - `acquire(timeout:)` and `tryAcquire()` exist; a timeout is a typed ``SharedMemoryError/Code/lockError``.
/// - Key files and semaphore files are opened without following symlinks; objects of another user are refused
///   unless ``Options/allowForeignOwner`` is set.
public final class SystemSemaphore {
    /// Qt's `QSystemSemaphore::AccessMode`.
    public enum AccessMode: Sendable {
        /// Open an existing semaphore, creating it with the initial value if it does not exist.
        case open
        /// Create the semaphore with the initial value; an existing one is opened and left as it is.
        case create
    }

    public struct Options: Sendable {
        /// Use objects (key files, semaphores) that another user owns or created. Off by default: a System V
        /// set is used only when both its owner and its creator are this user, a file only when this user owns
        /// it. Objects used through this option are never removed by this library.
        public var allowForeignOwner: Bool
        /// Accept a System V native key whose file is outside the temp and runtime folders (see
        /// ``KeyPathPolicy``). Off by default.
        public var allowAnyPath: Bool
        public init(allowForeignOwner: Bool = false, allowAnyPath: Bool = false) {
            self.allowForeignOwner = allowForeignOwner
            self.allowAnyPath = allowAnyPath
        }
    }

    /// The key this semaphore was opened with.
    public let key: NativeIPCKey
    /// Whether this object created the semaphore (its initial value was applied).
    public var createdSemaphore: Bool { backend?.created ?? false }

    private var backend: (any SemaphoreBackend)? {
        didSet { fastPath = backend?.fastPath ?? .none }
    }
    /// The untimed acquire and the release of one unit, as the bare C calls (no reference counting, no error
    /// context): what C does. Any failure goes the full way, which retries, reopens or reports.
    private(set) var fastPath = SemaphoreFastPath.none
    private let options: Options

    /// Opens or creates the semaphore now, as Qt's constructor does.
    /// - Throws: ``SharedMemoryError`` with `keyError` for an empty or unsupported key, `permissionDenied` for
    ///   another user's semaphore or key file, `outOfResources` when the system's limits are reached.
    public init(
        key: NativeIPCKey, initialValue: Int = 0, mode: AccessMode = .open, options: Options = Options()
    ) throws(SharedMemoryError) {
        self.key = key
        self.options = options
        let site = CallSite(operation: "open semaphore", key: key)
        guard !key.nativeKey.isEmpty else { throw site.refusal(.keyError, "the key is empty") }
        if let problem = key.nameLengthProblem(semaphore: true) { throw site.refusal(.keyError, problem) }
        guard initialValue >= 0, initialValue <= Int(Int32.max) else {
            throw site.refusal(.invalidSize, "initial value \(initialValue) is out of range")
        }
        try KeyPathPolicy.check(key, allowAnyPath: options.allowAnyPath, site: site)
        if key.type.isSystemV {
            backend = try SystemVSemaphore(
                key: key, initialValue: Int32(initialValue), allowForeignOwner: options.allowForeignOwner, site: site)
        } else if key.type == .posixRealtime {
            backend = try POSIXSemaphore(
                key: key, initialValue: UInt32(initialValue), allowForeignOwner: options.allowForeignOwner, site: site)
        } else {
            throw site.refusal(.keyError, "unsupported key type \(key.type) on this platform")
        }
        _ = mode  // both modes create a missing semaphore and never reset an existing one
    }

    deinit { close() }

    /// Takes one unit: blocks while the count is 0, at most `timeout` if given.
    /// - Throws: `lockError` when the timeout passes.
    public func acquire(timeout: Duration? = nil) throws(SharedMemoryError) {
        if timeout == nil && fastPath.acquire() { return }
        defer { fastPath = backend?.fastPath ?? .none }  // a System V set may have been reopened
        let site = CallSite(operation: "acquire", key: key)
        guard let backend else { throw site.refusal(.keyError, "the semaphore is closed") }
        guard try backend.acquire(deadline: timeout.map(Deadline.init(after:)), site: site) else {
            throw site.refusal(.lockError, "timed out after \(timeout!) waiting for the semaphore")
        }
    }

    /// Takes one unit if the count is above 0; returns false otherwise.
    public func tryAcquire() throws(SharedMemoryError) -> Bool {
        let site = CallSite(operation: "try-acquire", key: key)
        guard let backend else { throw site.refusal(.keyError, "the semaphore is closed") }
        return try backend.acquire(deadline: .now, site: site)
    }

    /// Adds `n` units (Qt's `release(n)`): 0 does nothing; a negative `n` is refused.
    public func release(_ n: Int = 1) throws(SharedMemoryError) {
        if n == 1 && fastPath.release() { return }
        defer { fastPath = backend?.fastPath ?? .none }
        let site = CallSite(operation: "release", key: key)
        guard let backend else { throw site.refusal(.keyError, "the semaphore is closed") }
        guard n >= 0, n <= Int(Int16.max) else { throw site.refusal(.invalidSize, "release count \(n) is out of range") }
        if n == 0 { return }
        try backend.release(n, site: site)
    }

    /// The current count (System V: `GETVAL`; POSIX: `sem_getvalue`).
    public func value() throws(SharedMemoryError) -> Int {
        let site = CallSite(operation: "value", key: key)
        guard let backend else { throw site.refusal(.keyError, "the semaphore is closed") }
        return try backend.value(site: site)
    }

    /// Whether no process but this one can be holding a unit of the semaphore: no other open file description
    /// records a use of it and no other process maps its file (see `SharedMemory`'s operation lock). Always
    /// false for System V, whose dead holders the kernel undoes.
    func noOtherProcessCanHold() -> Bool {
        backend?.noOtherProcessCanHold() ?? false
    }

    /// Stops recording this process as a user of the semaphore (before a last release; see `SharedMemory`).
    /// The handle stays usable; `close` may still remove the semaphore.
    func dropUsageRecord() {
        backend?.dropUsageRecord()
    }

    /// Closes the handle. The semaphore itself is removed only if this library created it and no other process
    /// using this library still has it open (`removeIfUnused: false` keeps it in any case).
    public func close(removeIfUnused: Bool = true) {
        // This process's usage record goes first: two last users closing at the same moment would otherwise
        // each see the other's record, and neither would remove the semaphore. Without a record, only one of
        // them can claim it (the claims exclude each other), and a later closer sees no earlier one.
        if removeIfUnused { dropRecordBeforeClose() }
        close(removeIfUnused: removeIfUnused) { true }
    }

    /// The first step of `close(removeIfUnused: true)`; the second is `close(removeIfUnused:_:)`. Apart for the
    /// test that interleaves two closers step by step (`SemaphoreCloseRaceTests`).
    func dropRecordBeforeClose() { backend?.releaseUsageForClose() }

    /// `close(removeIfUnused:)`, asking `stillRemovable` last, only once the semaphore could be removed (this
    /// library made it and no other process using the library has it open): for a costly last check.
    func close(removeIfUnused: Bool, _ stillRemovable: () -> Bool) {
        backend?.close(removeIfUnused: removeIfUnused, stillRemovable)
        backend = nil
    }
}

/// The bare calls behind an untimed acquire and a release of one unit. Each returns false on any failure
/// (including EINTR), after which the caller takes the full path: it redoes the operation, which the failed
/// call did not perform.
enum SemaphoreFastPath {
    case none
    case posix(UnsafeMutablePointer<sem_t>)
    case systemV(Int32)

    @inline(__always)
    func acquire() -> Bool {
        switch self {
        case .none: false
        case .posix(let handle): sem_wait(handle) == 0
        case .systemV(let semid): shm_shim_semop(semid, 0, -1, Int16(SHM_SHIM_SEM_UNDO), -1) == 0
        }
    }

    @inline(__always)
    func release() -> Bool {
        switch self {
        case .none: false
        case .posix(let handle): sem_post(handle) == 0
        case .systemV(let semid): shm_shim_semop(semid, 0, 1, Int16(SHM_SHIM_SEM_UNDO), -1) == 0
        }
    }
}

/// One backend of ``SystemSemaphore``.
protocol SemaphoreBackend: AnyObject {
    var created: Bool { get }
    /// The fast path for the object as it is now (`.none` once closed).
    var fastPath: SemaphoreFastPath { get }
    /// Returns false when the deadline passed (a try-acquire passes `.now`).
    func acquire(deadline: Deadline?, site: CallSite) throws(SharedMemoryError) -> Bool
    func release(_ n: Int, site: CallSite) throws(SharedMemoryError)
    func value(site: CallSite) throws(SharedMemoryError) -> Int
    /// Removes the semaphore if `removeIfUnused`, this library made it, no other library user records a use,
    /// and then `stillRemovable()` (asked last) agrees.
    func close(removeIfUnused: Bool, _ stillRemovable: () -> Bool)
    func noOtherProcessCanHold() -> Bool
    func dropUsageRecord()
    /// Drops this process's usage record right before a standalone close that may remove the semaphore.
    func releaseUsageForClose()
}

extension SemaphoreBackend {
    func noOtherProcessCanHold() -> Bool { false }
    func dropUsageRecord() {}
}

/// A point on the monotonic clock, for waits that EINTR may interrupt.
struct Deadline: Sendable {
    let nanoseconds: Int64

    static var now: Deadline { Deadline(nanoseconds: monotonicNow()) }

    init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    init(after duration: Duration) {
        let (seconds, attos) = duration.components
        let total = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let ns = total.overflow ? Int64.max / 2 : total.partialValue + attos / 1_000_000_000
        nanoseconds = Deadline.monotonicNow() + max(0, ns)
    }

    /// Nanoseconds left, never negative.
    var remaining: Int64 { max(0, nanoseconds - Deadline.monotonicNow()) }

    static func monotonicNow() -> Int64 { shm_shim_monotonic_ns() }
}
