import CShmShim
import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One resource as a worker (or the runner's setup) sees it: a keyed segment, a mapped file or a memfd, with
/// the lock its scenario chose. Every access is checked (range, read-only, and for files a shrink: bus-error).
package class ResourceHandle {
    package let spec: Plan.Resource
    private var futex: FutexLock?
    private var robust: RobustMutex?
    private var lockFile: LockFile?
    /// This process holds the robust mutex: its memory must stay mapped until the process ends, or the kernel
    /// cannot mark the mutex owner-died for the next locker.
    private(set) var holdsRobustMutex = false
    /// Why the in-memory lock could not be opened at attach (reported by the first lock step, not by attach).
    private var lockProblem: SharedMemoryError?

    /// Whether create / attach / detach of a segment take its lock. The runner turns this off once every worker
    /// has ended: it is then the only user, and a lock a dead worker kept (a POSIX semaphore has no undo) must
    /// not hold its teardown up.
    package var takesLocks = true {
        didSet { locksChanged() }
    }

    init(_ spec: Plan.Resource) { self.spec = spec }

    func locksChanged() {}

    package static func make(_ spec: Plan.Resource) -> ResourceHandle {
        switch spec.kind {
        case .segment: SegmentHandle(spec)
        case .file: MappedFileHandle(spec)
        case .memfd: MemFDHandle(spec)
        case .semaphore: SemaphoreHandle(spec)
        }
    }

    /// How errors name the object.
    var objectName: String { spec.key ?? spec.path ?? "memfd:\(spec.id)" }

    // MARK: what each kind provides

    /// The mapped bytes while attached.
    package var bytes: UnsafeMutableRawBufferPointer? { nil }
    /// Files and memfds: the current mapping (for `sync`).
    package var fileMapping: FileMapping? { nil }
    var isReadOnly: Bool { false }
    func createObject(size: Int) throws(SharedMemoryError) {}
    func attachObject(readOnly: Bool) throws(SharedMemoryError) {}
    /// A private (copy-on-write) mapping: files only.
    func attachPrivateObject() throws(SharedMemoryError) {
        throw SharedMemoryError(.invalidSize, operation: "attach", object: objectName, detail: "mode: private maps a file; this is a \(spec.kind.rawValue)")
    }
    func detachObject() throws(SharedMemoryError) {}
    package func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] { [] }
    func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) {}
    func truncate(to size: Int) throws(SharedMemoryError) {
        throw SharedMemoryError(.invalidSize, operation: "truncate", detail: "\(spec.kind.rawValue) resources have no file size to change")
    }
    package func seal(_ seals: [Seal]) throws(SharedMemoryError) {
        throw SharedMemoryError(.sealed, operation: "seal", detail: "only a memfd takes seals")
    }
    func close() {}
    /// The segment's own lock (its Qt semaphore); only segments have one.
    func semaphoreLock(_ operation: LockOperation, timeout: Duration?) throws(SharedMemoryError) -> Bool {
        throw SharedMemoryError(.lockError, operation: "lock", detail: "lock: semaphore belongs to segments")
    }

    // MARK: shared behaviour

    func create(size: Int?) throws(SharedMemoryError) {
        try createObject(size: size ?? spec.size ?? 0)
        try openInMemoryLock(initialize: true)
    }

    package func attach(readOnly: Bool, private isPrivate: Bool = false) throws(SharedMemoryError) {
        if isPrivate { try attachPrivateObject() } else { try attachObject(readOnly: readOnly) }
        do throws(SharedMemoryError) { try openInMemoryLock(initialize: false) } catch { lockProblem = error }
    }

    /// The bytes `fill` and `check-fill` cover: all but an in-memory lock's 64-byte area.
    var dataRanges: [Range<Int>] {
        let count = bytes?.count ?? 0
        guard [.futex, .robustMutex].contains(spec.lock) else { return [0..<count] }
        let lockEnd = min(count, spec.lockOffset + 64)
        return [0..<min(count, spec.lockOffset), lockEnd..<count].filter { !$0.isEmpty }
    }

    package func detach() throws(SharedMemoryError) {
        futex = nil
        robust = nil
        lockProblem = nil
        lockFile?.close()
        lockFile = nil
        try detachObject()
    }

    /// The in-memory lock lives at `lock-offset` of the mapping: the creator initialises it, others open it.
    private func openInMemoryLock(initialize: Bool) throws(SharedMemoryError) {
        guard let bytes, [.futex, .robustMutex].contains(spec.lock) else { return }
        if spec.lock == .futex {
            futex = initialize ? try FutexLock(initializingAt: spec.lockOffset, in: bytes) : try FutexLock(at: spec.lockOffset, in: bytes)
        } else {
            robust = initialize ? try RobustMutex(initializingAt: spec.lockOffset, in: bytes) : try RobustMutex(at: spec.lockOffset, in: bytes)
        }
    }

    enum LockOperation { case lock, tryLock, unlock }

    /// lock / try-lock (false when taken) / unlock with the resource's lock kind; a lock waits at most
    /// `timeout` (nil: without limit) and then fails with lock-error.
    func lock(_ operation: LockOperation, timeout: Duration? = nil) throws(SharedMemoryError) -> Bool {
        switch spec.lock {
        case .semaphore:
            return try semaphoreLock(operation, timeout: timeout)
        case .futex:
            if let lockProblem { throw lockProblem }
            guard let futex else { throw SharedMemoryError(.lockError, operation: "lock", detail: "not attached: the futex word is in the memory") }
            // Direct calls, no closures: this is the step interpreter's hot path (closures cost allocations).
            switch operation {
            case .lock: if let timeout { try futex.lock(timeout: timeout) } else { try futex.lock() }
            case .unlock: try futex.unlock()
            case .tryLock: do throws(SharedMemoryError) { try futex.tryLock() } catch where error.code == .busy { return false }
            }
            return true
        case .robustMutex:
            if let lockProblem { throw lockProblem }
            guard let robust else { throw SharedMemoryError(.lockError, operation: "lock", detail: "not attached: the mutex is in the memory") }
            do throws(SharedMemoryError) {
                let lock: () throws(SharedMemoryError) -> Void = if let timeout { { () throws(SharedMemoryError) in try robust.lock(timeout: timeout) } } else { robust.lock }
                let done = try Self.run(operation, lock: lock, tryLock: robust.tryLock, unlock: robust.unlock)
                if done { holdsRobustMutex = operation != .unlock }
                return done
            } catch where error.code == .ownerDied {
                // The lock is held: repair (make the state consistent) and let the step report owner-died.
                holdsRobustMutex = true
                try robust.markConsistent()
                throw error
            }
        case .lockfile:
            if lockFile == nil { lockFile = try openLockFile() }
            let file = lockFile!
            let lock: () throws(SharedMemoryError) -> Void = if let timeout { { () throws(SharedMemoryError) in try file.lock(timeout: timeout) } } else { file.lock }
            return try Self.run(operation, lock: lock, tryLock: file.tryLock, unlock: file.unlock)
        }
    }

    /// `<path>.lock`: for files their own path; for segments and memfds the runner names a run-scoped path.
    func openLockFile() throws(SharedMemoryError) -> LockFile {
        if let path = spec.path { return try LockFile(forResourceAt: path) }
        throw SharedMemoryError(.lockError, operation: "lock", detail: "lock: lockfile needs a path in the plan")
    }

    private static func run(
        _ operation: LockOperation, lock: () throws(SharedMemoryError) -> Void, tryLock: () throws(SharedMemoryError) -> Void,
        unlock: () throws(SharedMemoryError) -> Void
    ) throws(SharedMemoryError) -> Bool {
        switch operation {
        case .lock: try lock()
        case .unlock: try unlock()
        case .tryLock:
            do throws(SharedMemoryError) { try tryLock() } catch where error.code == .busy { return false }
        }
        return true
    }

    /// add / atomic-add at a checked pointer, under the SIGBUS guard (no size check: they are the hot path; a
    /// page that is gone is bus-error, not a dead worker).
    func guardedAdd(_ value: UInt64, at pointer: UnsafeMutableRawPointer, atomic: Bool) throws(SharedMemoryError) {
        if shm_shim_guarded_add_u64(pointer, value, atomic ? 1 : 0) != 0 {
            throw SharedMemoryError(
                .busError, operation: atomic ? "atomic-add" : "add", call: "guarded add", underlyingError: .badAddress,
                object: objectName, detail: "SIGBUS during the access: the memory's file was shrunk")
        }
    }

    /// Checked pointer for 8-byte arithmetic steps (add, atomic-add).
    func pointer(offset: Int, length: Int) throws(SharedMemoryError) -> UnsafeMutableRawPointer {
        guard let bytes else { throw SharedMemoryError(.notFound, operation: "access", object: objectName, detail: "not attached") }
        if isReadOnly { throw SharedMemoryError(.permissionDenied, operation: "access", object: objectName, detail: "attached read-only") }
        guard offset >= 0, offset <= bytes.count - length else {
            throw SharedMemoryError(.invalidSize, operation: "access", object: objectName, detail: "offset \(offset)+\(length) is outside \(bytes.count) bytes")
        }
        return bytes.baseAddress! + offset
    }
}

/// A keyed segment with Qt's semantics.
final class SegmentHandle: ResourceHandle {
    private var memory: SharedMemory?

    private func segment() throws(SharedMemoryError) -> SharedMemory {
        if let memory { return memory }
        guard let text = spec.key, let key = NativeIPCKey(string: text) else {
            throw SharedMemoryError(.keyError, operation: "resource", detail: "resource \(spec.id) has no key in the plan")
        }
        let made = SharedMemory(key: key, options: .init(takesLock: takesLocks))
        memory = made
        return made
    }

    override func locksChanged() { memory?.options.takesLock = takesLocks }

    var sharedMemory: SharedMemory? { memory }
    // The mapping as of the last create / attach / detach (only they change it): the add steps read these per
    // step, without going through the segment object.
    private var mapped: UnsafeMutableRawBufferPointer?
    private var mappedReadOnly = false
    private func remember() {
        mapped = memory?.data
        mappedReadOnly = memory?.accessMode == .readOnly
    }
    override var bytes: UnsafeMutableRawBufferPointer? { mapped }
    override var isReadOnly: Bool { mappedReadOnly }
    override func createObject(size: Int) throws(SharedMemoryError) {
        defer { remember() }
        try segment().create(size: size)
    }
    override func attachObject(readOnly: Bool) throws(SharedMemoryError) {
        defer { remember() }
        try segment().attach(readOnly ? .readOnly : .readWrite)
    }
    override func detachObject() throws(SharedMemoryError) {
        defer { remember() }
        try segment().detach()
    }
    override func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] { try segment().read(at: offset, count: count) }
    override func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) { try segment().write(bytes, at: offset) }
    override func close() {
        if memory?.isAttached == true { try? detach() }
        memory = nil
        remember()
    }
    override func semaphoreLock(_ operation: LockOperation, timeout: Duration?) throws(SharedMemoryError) -> Bool {
        let memory = try segment()
        switch operation {
        case .lock: try memory.lock(timeout: timeout)
        case .unlock: try memory.unlock()
        case .tryLock: return try memory.tryLock()
        }
        return true
    }
}

/// A file mapped shared (or private), guarded against shrinking.
final class MappedFileHandle: ResourceHandle {
    private var file: MappedFile?
    private var mapping: FileMapping?

    override var bytes: UnsafeMutableRawBufferPointer? { mapping?.bytes }
    override package var fileMapping: FileMapping? { mapping }
    override var isReadOnly: Bool { mapping.map { !$0.isWritable } ?? false }

    private var path: String { spec.path ?? "" }

    override func createObject(size: Int) throws(SharedMemoryError) {
        let made = try MappedFile.create(at: path, size: size)
        file = made
        mapping = try made.map(spec.isPrivate ? .private : .shared, writable: true)
    }

    override func attachObject(readOnly: Bool) throws(SharedMemoryError) {
        guard mapping == nil else { throw SharedMemoryError(.alreadyExists, operation: "attach", object: path, detail: "already attached") }
        let opened = try MappedFile.open(at: path)
        file = opened
        mapping = try opened.map(spec.isPrivate ? .private : .shared, writable: !readOnly)
    }

    override func attachPrivateObject() throws(SharedMemoryError) {
        guard mapping == nil else { throw SharedMemoryError(.alreadyExists, operation: "attach", object: path, detail: "already attached") }
        let opened = try MappedFile.open(at: path)
        file = opened
        mapping = try opened.map(.private, writable: true)
    }

    override func detachObject() throws(SharedMemoryError) {
        guard let mapping else { throw SharedMemoryError(.notFound, operation: "detach", object: path, detail: "not attached") }
        try mapping.unmap()
        self.mapping = nil
        file?.close()
        file = nil
    }

    private func mapped() throws(SharedMemoryError) -> FileMapping {
        guard let mapping else { throw SharedMemoryError(.notFound, operation: "access", object: path, detail: "not attached") }
        return mapping
    }

    override func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] { try mapped().read(at: offset, count: count) }
    override func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) { try mapped().write(bytes, at: offset) }

    override func truncate(to size: Int) throws(SharedMemoryError) {
        if let file {
            try file.resize(to: size)
        } else {
            let opened = try MappedFile.open(at: path)
            defer { opened.close() }
            try opened.resize(to: size)
        }
    }

    override func close() {
        try? mapping?.unmap()
        mapping = nil
        file?.close()
        file = nil
    }
}

/// An anonymous memfd: made (and sealed) by the runner, inherited by workers at a fixed descriptor.
final class MemFDHandle: ResourceHandle {
    private var memfd: MemFD?
    private var mapping: FileMapping?

    /// The runner's own memfd (it made it); workers adopt the inherited descriptor.
    init(_ spec: Plan.Resource, memfd: MemFD? = nil) {
        self.memfd = memfd
        super.init(spec)
    }

    override init(_ spec: Plan.Resource) { super.init(spec) }

    override var bytes: UnsafeMutableRawBufferPointer? { mapping?.bytes }
    override package var fileMapping: FileMapping? { mapping }
    override var isReadOnly: Bool { mapping.map { !$0.isWritable } ?? false }

    private func object() throws(SharedMemoryError) -> MemFD {
        if let memfd { return memfd }
        guard let fd = spec.fd else { throw SharedMemoryError(.notFound, operation: "attach", detail: "memfd \(spec.id): no inherited descriptor") }
        let adopted = try MemFD(adopting: FileDescriptor(rawValue: fd), name: spec.id)
        memfd = adopted
        return adopted
    }

    override func createObject(size: Int) throws(SharedMemoryError) {
        // share: pass: nobody inherited it; this worker makes it (and may send it).
        if memfd == nil && spec.fd == nil { memfd = try MemFD.create(name: "shm-harness-\(spec.id)", size: size) }
        let memfd = try object()
        if try memfd.size() < size { try memfd.resize(to: size) }
        mapping = try memfd.map(.shared, writable: true)
    }

    override func attachObject(readOnly: Bool) throws(SharedMemoryError) {
        guard mapping == nil else { throw SharedMemoryError(.alreadyExists, operation: "attach", detail: "already attached") }
        mapping = try object().map(.shared, writable: !readOnly)
    }

    override func detachObject() throws(SharedMemoryError) {
        guard let mapping else { throw SharedMemoryError(.notFound, operation: "detach", detail: "not attached") }
        try mapping.unmap()
        self.mapping = nil
    }

    private func mapped() throws(SharedMemoryError) -> FileMapping {
        guard let mapping else { throw SharedMemoryError(.notFound, operation: "access", detail: "memfd \(spec.id) is not attached") }
        return mapping
    }

    override func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] { try mapped().read(at: offset, count: count) }
    override func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) { try mapped().write(bytes, at: offset) }
    override func truncate(to size: Int) throws(SharedMemoryError) { try object().resize(to: size) }

    /// The descriptor to send (`send-fd`): the one this process made, inherited or received.
    func descriptorToSend() throws(SharedMemoryError) -> FileDescriptor {
        guard let fd = try object().descriptor else { throw SharedMemoryError(.notFound, operation: "send-fd", detail: "memfd \(spec.id) is closed") }
        return fd
    }

    /// `receive-fd` into a memfd this worker holds already is `already-exists`, before anything is received
    /// (as in the C worker: the next `receive-fd` still gets the next descriptor).
    func checkCanReceive() throws(SharedMemoryError) {
        if memfd != nil || spec.fd != nil {
            throw SharedMemoryError(.alreadyExists, operation: "receive-fd", detail: "memfd \(spec.id): this worker already holds one")
        }
    }

    /// A descriptor received from another worker (`receive-fd`) becomes this resource.
    func adopt(received fd: FileDescriptor) throws(SharedMemoryError) {
        do throws(SharedMemoryError) { try checkCanReceive() } catch {
            try? fd.close()
            throw error
        }
        do throws(SharedMemoryError) { memfd = try MemFD(adopting: fd, name: spec.id) } catch {
            try? fd.close()
            throw error
        }
    }

    override func seal(_ seals: [Seal]) throws(SharedMemoryError) {
        guard let set = MemFD.Seals(names: seals.map(\.rawValue).joined(separator: ",")) else {
            throw SharedMemoryError(.invalidSize, operation: "seal", detail: "unknown seals \(seals)")
        }
        try object().addSeals(set)
    }

    override func close() {
        try? mapping?.unmap()
        mapping = nil
        memfd?.close()
        memfd = nil
    }
}
