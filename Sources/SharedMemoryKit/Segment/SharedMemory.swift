import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A keyed shared-memory segment, interoperable with Qt's `QSharedMemory` on System V and POSIX.
///
/// The call order is Qt's: open the segment's lock semaphore, lock, create or attach, unlock. The lock is the
/// semaphore Qt uses (``NativeIPCKey/lockSemaphoreKey(tempDirectory:)``), so a Qt process and this library
/// exclude each other. Differences from Qt, all on purpose, are listed in the README; in short: a failed
/// `create` never touches the lock, segments are zero-filled and fully allocated at create (a full `/dev/shm`
/// is `outOfResources` then, not a SIGBUS later), a POSIX segment this library created is removed at the last
/// detach of any process using the library (crashes included), internal locking has a timeout, and objects of
/// other users are refused unless ``Options/allowForeignOwner`` is set.
///
/// Not thread-safe: use one object per thread, as with Qt.
public final class SharedMemory {
    /// Qt's `QSharedMemory::AccessMode`.
    public enum AccessMode: Sendable {
        case readOnly, readWrite
    }

    public struct Options: Sendable {
        /// Use segments, semaphores and key files that another user owns or created (for real cross-user
        /// sharing, as the permission bits allow). Off by default: a System V object is used only when both its
        /// owner and its creator are this user, a file only when this user owns it. Objects used through this
        /// option are never removed by this library, whatever happens.
        public var allowForeignOwner: Bool
        /// How long `create`, `attach` and `detach` wait for the segment's lock; nil waits forever (Qt).
        public var operationTimeout: Duration?
        /// Whether `create`, `attach` and `detach` take the segment's lock (Qt's call order). Off, they open the
        /// lock semaphore but never wait on it: a lock held forever (a dead POSIX holder) cannot stall them.
        /// What stays safe without the lock: attaching (the usage record is taken before the segment is
        /// mapped), and the removal rule of the last detach (a POSIX segment goes only when no other process
        /// using this library records a use; a System V one only at attach count 0), so nothing in use is ever
        /// removed. What is lost: two last users detaching at the same moment may both leave the segment (for
        /// `shm-harness clean`), and a Qt process is not kept out while it creates or attaches.
        public var takesLock: Bool
        /// Accept a System V native key whose file is outside the temp and runtime folders (see
        /// ``KeyPathPolicy``). Off by default. The file is still never removed unless this library made it.
        public var allowAnyPath: Bool

        public init(
            allowForeignOwner: Bool = false, operationTimeout: Duration? = .seconds(30), takesLock: Bool = true, allowAnyPath: Bool = false
        ) {
            self.allowForeignOwner = allowForeignOwner
            self.operationTimeout = operationTimeout
            self.takesLock = takesLock
            self.allowAnyPath = allowAnyPath
        }
    }

    /// The segment's key.
    public let key: NativeIPCKey
    /// The options; they may be changed between operations (e.g. `takesLock = false` for a last detach once
    /// every other user is known to be dead).
    public var options: Options

    private var semaphore: SystemSemaphore? {
        didSet { lockFastPath = semaphore?.fastPath ?? .none }
    }
    /// The lock's bare calls (see ``SemaphoreFastPath``): an untimed lock and an unlock cost what C's cost.
    private var lockFastPath = SemaphoreFastPath.none
    private var segment: (any SegmentBackend)?
    private var lockedByMe = false

    /// A segment handle for `key`. Nothing is opened until `create` or `attach`.
    public init(key: NativeIPCKey, options: Options = Options()) {
        self.key = key
        self.options = options
    }

    /// A segment handle for a legacy key, derived as Qt's `QSharedMemory::legacyNativeKey()` does.
    public convenience init(legacyKey: String, type: NativeIPCKey.KeyType = .legacyDefaultForOS, options: Options = Options()) {
        self.init(key: .legacy(legacyKey, type: type, kind: .sharedMemory), options: options)
    }

    deinit {
        if segment != nil { try? detach() }
        if semaphore != nil { closeSemaphore(removeIfUnused: true, onlyIfSegmentGone: true) }
    }

    /// Whether this object is attached.
    public var isAttached: Bool { segment != nil }
    /// The size of the attached segment as the system reports it (0 when not attached).
    public var size: Int { segment?.size ?? 0 }
    /// The access mode of the attachment, nil when not attached.
    public var accessMode: AccessMode? { segment?.access }
    /// The mapped bytes; nil when not attached. Writing through a read-only attachment faults: use
    /// ``write(_:at:)`` for checked access.
    public var data: UnsafeMutableRawBufferPointer? { segment?.bytes }

    // MARK: create / attach / detach

    /// Creates a zero-filled segment of `size` bytes, 0600, and attaches to it (Qt's `create(size, mode)`).
    /// - Throws: `invalidSize` for `size <= 0` or a size the system refuses, `alreadyExists`, `keyError`,
    ///   `permissionDenied`, `outOfResources` (limits, or not enough memory to back every byte), `lockError`.
    public func create(size: Int, access: AccessMode = .readWrite) throws(SharedMemoryError) {
        let site = CallSite(operation: "create", key: key)
        try checkKey(site)
        guard segment == nil else { throw site.refusal(.alreadyExists, "this object is already attached") }
        guard size > 0 else { throw site.refusal(.invalidSize, "size \(size) is not positive") }
        try withSegmentLock(site) { () throws(SharedMemoryError) -> Void in
            let backend = self.makeBackend()
            try backend.create(size: size, site: site)
            do throws(SharedMemoryError) {
                try backend.attach(access, site: site)
            } catch {
                _ = backend.destroyIfUnused()
                throw error
            }
            self.segment = backend
        }
    }

    /// Attaches to an existing segment (Qt's `attach(mode)`).
    /// - Throws: `notFound`, `permissionDenied` (including another user's segment without
    ///   ``Options/allowForeignOwner``), `keyError`, `lockError`.
    public func attach(_ access: AccessMode = .readWrite) throws(SharedMemoryError) {
        let site = CallSite(operation: "attach", key: key)
        try checkKey(site)
        guard segment == nil else { throw site.refusal(.alreadyExists, "this object is already attached") }
        try withSegmentLock(site) { () throws(SharedMemoryError) -> Void in
            let backend = self.makeBackend()
            try backend.attach(access, site: site)
            self.segment = backend
        }
    }

    /// Detaches (Qt's `detach()`). The last detach destroys the segment: System V when no process is attached
    /// any more (as Qt), POSIX when this library created it and no process using this library is attached.
    /// Detaching while holding ``lock(timeout:)`` releases that lock, as in Qt.
    public func detach() throws(SharedMemoryError) {
        let site = CallSite(operation: "detach", key: key)
        guard segment != nil else { throw site.refusal(.notFound, "this object is not attached") }
        try withSegmentLock(site) { () throws(SharedMemoryError) -> Void in
            guard let backend = self.segment else { return }
            self.segment = nil
            try backend.detach(site: site)
        }
    }

    // MARK: lock

    /// Takes the segment's lock (its system semaphore), waiting at most `timeout` (nil: without limit, as Qt).
    /// Locking twice through one object is a no-op, as in Qt.
    /// - Throws: `lockError` when the segment has no lock yet (neither created nor attached) or on timeout.
    public func lock(timeout: Duration? = nil) throws(SharedMemoryError) {
        if timeout == nil && !lockedByMe && lockFastPath.acquire() {
            lockedByMe = true
            return
        }
        defer { lockFastPath = semaphore?.fastPath ?? .none }
        let site = CallSite(operation: "lock", key: key)
        if lockedByMe { return }
        guard let semaphore else {
            throw site.refusal(.lockError, "no lock: create or attach first")
        }
        do throws(SharedMemoryError) {
            try semaphore.acquire(timeout: timeout)
        } catch {
            throw SharedMemoryError(
                .lockError, operation: "lock", call: error.call, underlyingError: error.underlyingError,
                object: key.description, detail: error.detail)
        }
        lockedByMe = true
    }

    /// Takes the lock if it is free; false if another holder has it.
    public func tryLock() throws(SharedMemoryError) -> Bool {
        let site = CallSite(operation: "try-lock", key: key)
        if lockedByMe { return true }
        guard let semaphore else { throw site.refusal(.lockError, "no lock: create or attach first") }
        lockedByMe = try semaphore.tryAcquire()
        return lockedByMe
    }

    /// Releases the lock taken with ``lock(timeout:)``.
    /// - Throws: `lockError` if this object does not hold it.
    public func unlock() throws(SharedMemoryError) {
        if lockedByMe && lockFastPath.release() {
            lockedByMe = false
            return
        }
        defer { lockFastPath = semaphore?.fastPath ?? .none }
        let site = CallSite(operation: "unlock", key: key)
        guard lockedByMe, let semaphore else { throw site.refusal(.lockError, "this object does not hold the lock") }
        try semaphore.release(1)
        lockedByMe = false
    }

    /// Runs `body` under the lock.
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        try lock(timeout: timeout)
        defer { try? unlock() }
        return try body()
    }

    // MARK: checked access

    /// Copies `count` bytes from `offset`.
    ///
    /// Guarded as ``FileMapping/read(at:count:)`` is: another process may shrink a POSIX segment's file
    /// (`ftruncate` of /dev/shm/NAME), and touching a page that is gone raises `SIGBUS`. The file's size is
    /// checked first (`fstat`), then the copy runs under ``BusGuard``, so both come back as `busError`.
    /// - Throws: `notFound` when not attached, `invalidSize` when the range is outside the segment, `busError`
    ///   when the segment's file no longer holds the bytes.
    public func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        let outcome = result.withUnsafeMutableBytes { buffer in
            Result { () throws(SharedMemoryError) in try read(at: offset, into: buffer) }
        }
        try outcome.get()
        return result
    }

    /// Copies `buffer.count` bytes from `offset` into `buffer`, as ``read(at:count:)`` does (no allocation).
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        let source = try checkedRange(operation: "read", offset: offset, count: buffer.count, writing: false)
        guard let destination = buffer.baseAddress, buffer.count > 0 else { return }
        try guardedCopy(from: source.base.baseAddress! + offset, to: destination, count: buffer.count, offset: offset, operation: "read")
    }

    /// Copies `bytes` to `offset`, guarded as ``read(at:count:)`` is (a shrink racing with the write may leave it
    /// partly done).
    /// - Throws: `permissionDenied` on a read-only attachment (instead of a fault), `invalidSize` when the range
    ///   is outside the segment, `notFound` when not attached, `busError` when the segment's file was shrunk.
    public func write(_ bytes: some Collection<UInt8>, at offset: Int) throws(SharedMemoryError) {
        let outcome = bytes.withContiguousStorageIfAvailable { storage in
            Result { () throws(SharedMemoryError) in try write(from: UnsafeRawBufferPointer(storage), at: offset) }
        } ?? Array(bytes).withUnsafeBytes { storage in
            Result { () throws(SharedMemoryError) in try write(from: storage, at: offset) }
        }
        try outcome.get()
    }

    /// Copies `source` to `offset`, as ``write(_:at:)`` does (no allocation).
    public func write(from source: UnsafeRawBufferPointer, at offset: Int) throws(SharedMemoryError) {
        let target = try checkedRange(operation: "write", offset: offset, count: source.count, writing: true)
        guard let start = source.baseAddress, source.count > 0 else { return }
        try guardedCopy(from: start, to: target.base.baseAddress! + offset, count: source.count, offset: offset, operation: "write")
    }

    /// The size check of a segment whose file can shrink (POSIX), then the guarded copy.
    private func guardedCopy(
        from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int, offset: Int, operation: String
    ) throws(SharedMemoryError) {
        if let backed = segment?.backedSize(), offset + count > backed {
            throw CallSite(operation: operation, object: key.description).refusal(
                .busError,
                "the segment's file is now \(backed) bytes; bytes \(offset)..<\(offset + count) of it are gone (it was shrunk)")
        }
        // The shim's guarded memcpy (BusGuard.copy's), called directly: nothing is built unless it faults.
        if shm_shim_guarded_copy(destination, source, count) != 0 {
            let err = Errno(rawValue: errno)
            throw SharedMemoryError(
                err == .badAddress ? .busError : .unknown, operation: operation, call: "guarded copy", underlyingError: err,
                object: key.description, detail: "memcpy(\(count) bytes; SIGBUS during the copy)")
        }
    }

    private func checkedRange(
        operation: String, offset: Int, count: Int, writing: Bool
    ) throws(SharedMemoryError) -> Slice<UnsafeMutableRawBufferPointer> {
        // The call site (and the key's description) only on failure: this runs on every read and write.
        var site: CallSite { CallSite(operation: operation, object: key.description) }
        guard let segment else { throw site.refusal(.notFound, "not attached") }
        if writing && segment.access == .readOnly {
            throw site.refusal(.permissionDenied, "the segment is attached read-only")
        }
        guard offset >= 0, count >= 0, offset <= segment.size, count <= segment.size - offset else {
            throw site.refusal(.invalidSize, "range \(offset)..<\(offset &+ count) is outside the segment of \(segment.size) bytes")
        }
        return segment.bytes[offset..<(offset + count)]
    }

    // MARK: internals

    private func checkKey(_ site: CallSite) throws(SharedMemoryError) {
        guard !key.nativeKey.isEmpty else { throw site.refusal(.keyError, "the key is empty") }
        guard key.type.isSupported else { throw site.refusal(.keyError, "unsupported key type \(key.type) on this platform") }
        try KeyPathPolicy.check(key, allowAnyPath: options.allowAnyPath, site: site)
        if let problem = key.nameLengthProblem(semaphore: false) ?? key.lockSemaphoreKey().nameLengthProblem(semaphore: true) {
            throw site.refusal(.keyError, problem)
        }
    }

    private func makeBackend() -> any SegmentBackend {
        Self.backend(for: key, allowForeignOwner: options.allowForeignOwner)
    }

    private static func backend(for key: NativeIPCKey, allowForeignOwner: Bool) -> any SegmentBackend {
        if key.type.isSystemV {
            return SystemVSegment(key: key, allowForeignOwner: allowForeignOwner)
        }
        return POSIXSegment(key: key, allowForeignOwner: allowForeignOwner)
    }

    /// Opens the lock semaphore if needed, runs `body` under the lock, releases it, and closes the semaphore
    /// (removing it if unused) once no segment is attached.
    private func withSegmentLock(
        _ site: CallSite, _ body: () throws(SharedMemoryError) -> Void
    ) throws(SharedMemoryError) {
        if semaphore == nil {
            semaphore = try SystemSemaphore(
                key: key.lockSemaphoreKey(), initialValue: 1, mode: .open,
                options: .init(allowForeignOwner: options.allowForeignOwner, allowAnyPath: options.allowAnyPath))
        }
        let semaphore = semaphore!
        let alreadyLocked = lockedByMe
        var acquired = false
        if !alreadyLocked && options.takesLock {
            do throws(SharedMemoryError) {
                try acquireForOperation(semaphore)
                acquired = true
            } catch {
                // The lock is held by someone (perhaps a Qt process): never remove it here.
                if segment == nil { closeSemaphore(removeIfUnused: false) }
                throw SharedMemoryError(
                    .lockError, operation: site.operation, call: error.call, underlyingError: error.underlyingError,
                    object: site.object, detail: "unable to lock: " + (error.detail ?? error.code.name))
            }
        }
        var failure: SharedMemoryError?
        do throws(SharedMemoryError) {
            try body()
        } catch {
            failure = error
        }
        // Qt releases the caller's own lock too when detaching while locked; keep its lock otherwise.
        if acquired || (alreadyLocked && segment == nil) {
            // Done with the semaphore (no segment): drop this process's usage record on it *before* the post.
            // The next holder may be the last user; it decides under the lock whether the semaphore goes, and
            // must not see this process as a user any more (else both would leave it behind).
            if segment == nil { semaphore.dropUsageRecord() }
            try? semaphore.release(1)
            lockedByMe = false
        }
        // The lock semaphore goes with the segment: only if no other process using this library has it open,
        // and then only when no process (of any kind: Qt's count too) is attached to a segment under this key.
        // The second question is asked last, and only when the semaphore could go: it is the costly one
        // (POSIX has no attach count). A segment nobody is attached to (Qt's leaked POSIX segments, a crashed
        // creator's System V one) does not keep it.
        if segment == nil { closeSemaphore(removeIfUnused: true, onlyIfSegmentGone: true) }
        if let failure { throw failure }
    }

    /// The lock for `create`, `attach` and `detach`, waiting at most ``Options/operationTimeout``.
    ///
    /// A POSIX semaphore has no `SEM_UNDO`: a process that dies holding it leaves it taken for ever. When the
    /// lock is taken and no process but this one can hold it, this object takes the dead holder's place instead
    /// of waiting (and releases it when done, which repairs the semaphore for everyone). "No process can hold
    /// it" is proven, not guessed: a holder must have the semaphore open, and every process that has it open
    /// either records its use on the semaphore's file (this library, Swift and C; the kernel drops the record
    /// when the process dies) or maps that file (glibc's `sem_open`, so Qt too). With neither, whoever took the
    /// unit is dead. The proof is tried at once and then after every second of waiting (a holder may die
    /// while we wait), a cheap check of the usage records first (one `fcntl`), /proc only when there are none.
    /// System V semaphores need none of this: the kernel undoes a dead holder's operation.
    private func acquireForOperation(_ semaphore: SystemSemaphore) throws(SharedMemoryError) {
        if try semaphore.tryAcquire() { return }
        let timeout = options.operationTimeout
        let deadline = timeout.map { Deadline(after: $0) }
        while true {
            if semaphore.noOtherProcessCanHold() {
                _ = try semaphore.tryAcquire()  // taken: ours now; still taken: the dead holder's unit is ours
                return
            }
            if let deadline, deadline.remaining == 0 {
                throw SharedMemoryError(
                    .lockError, operation: "acquire", object: semaphore.key.description,
                    detail: "timed out after \(timeout!) waiting for the semaphore")
            }
            let slice = deadline.map { min(Duration.nanoseconds($0.remaining), .seconds(1)) } ?? .seconds(1)
            do throws(SharedMemoryError) {
                try semaphore.acquire(timeout: slice)
                return
            } catch where error.code == .lockError {
                continue  // this slice is up: prove again, then wait on
            }
        }
    }

    /// Closes the lock semaphore; with `onlyIfSegmentGone`, it is removed only if, once it could be (ours, no
    /// other library user), no process is attached to a segment under the key.
    private func closeSemaphore(removeIfUnused: Bool = true, onlyIfSegmentGone: Bool = false) {
        if onlyIfSegmentGone {
            let key = self.key
            let allowForeignOwner = options.allowForeignOwner
            semaphore?.close(removeIfUnused: removeIfUnused) {
                !SharedMemory.backend(for: key, allowForeignOwner: allowForeignOwner).isAttachedByAnyProcess()
            }
        } else {
            semaphore?.close(removeIfUnused: removeIfUnused)
        }
        semaphore = nil
    }
}

/// One backend of ``SharedMemory``: a segment this object created or attached to.
protocol SegmentBackend: AnyObject {
    var size: Int { get }
    var access: SharedMemory.AccessMode { get }
    var bytes: UnsafeMutableRawBufferPointer { get }
    /// Makes the segment; on failure nothing is left behind (but an object that already existed).
    func create(size: Int, site: CallSite) throws(SharedMemoryError)
    func attach(_ access: SharedMemory.AccessMode, site: CallSite) throws(SharedMemoryError)
    /// Unmaps; destroys the segment when this was its last user.
    func detach(site: CallSite) throws(SharedMemoryError)
    /// Removes a segment this object created if no one attached to it (after a failed attach).
    func destroyIfUnused() -> Bool
    /// Whether any process is attached to a segment under the key now.
    func isAttachedByAnyProcess() -> Bool
    /// How many bytes the segment's file holds now, when it can shrink under the mapping (POSIX); nil when it
    /// cannot (System V).
    func backedSize() -> Int?
}
