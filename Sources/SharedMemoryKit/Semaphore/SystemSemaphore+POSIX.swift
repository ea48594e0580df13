import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A POSIX named semaphore (`sem_open`), as Qt's POSIX backend uses it: created 0600 with `O_EXCL`, named by
/// the native key as it is.
///
/// glibc keeps it in the file `/dev/shm/sem.NAME`. That file is the semaphore's ``ObjectFile``: users record
/// their use on it, and the sticky bit marks semaphores this library created (removed with their last user).
final class POSIXSemaphore: SemaphoreBackend {
    let created: Bool
    private var handle: UnsafeMutablePointer<sem_t>?
    private let file: ObjectFile
    private let name: String

    /// glibc's file for a semaphore name: leading slashes dropped, `sem.` prefixed, under /dev/shm.
    static func filePath(for name: String) -> String {
        "/dev/shm/sem." + name.drop(while: { $0 == "/" })
    }

    init(key: NativeIPCKey, initialValue: UInt32, allowForeignOwner: Bool, site: CallSite) throws(SharedMemoryError) {
        let name = key.nativeKey
        self.name = name
        let path = Self.filePath(for: name)
        guard !name.drop(while: { $0 == "/" }).isEmpty, !name.drop(while: { $0 == "/" }).contains("/") else {
            throw site.refusal(.keyError, "a POSIX semaphore name is one path component: \(name)")
        }
        var attempt = 0
        while true {
            attempt += 1
            if attempt > 100 {
                throw site.refusal(.keyError, "the semaphore file \(path) keeps disappearing")
            }
            // An existing semaphore: record our use first, so that nobody removes it between open and use.
            var existing: ObjectFile?
            do throws(SharedMemoryError) {
                existing = try ObjectFile.openExisting(path, allowForeignOwner: allowForeignOwner, site: site)
            } catch where error.code == .notFound {
                existing = nil
            }
            if let existing {
                try existing.recordUse(site: site)
                guard existing.isStillAtPath else { continue }
                switch pointerOrErrno({ shm_shim_sem_open(name, 0, 0, 0) }) {
                case .success(let sem):
                    guard existing.isStillAtPath else {
                        sem_close(sem)
                        continue
                    }
                    handle = sem
                    file = existing
                    created = false
                    return
                case .failure(.noSuchFileOrDirectory): continue
                case .failure(let err): throw site.error("sem_open", err, einval: .keyError, detail: name)
                }
            }
            switch pointerOrErrno({ shm_shim_sem_open(name, SHM_SHIM_O_CREAT | SHM_SHIM_O_EXCL, 0o600, initialValue) }) {
            case .success(let sem):
                let made: ObjectFile
                do throws(SharedMemoryError) {
                    made = try ObjectFile.openExisting(path, allowForeignOwner: false, site: site)
                    try made.recordUse(site: site)
                    try made.markManaged(mode: [.ownerReadWrite], site: site)
                } catch {
                    sem_close(sem)
                    sem_unlink(name)
                    throw error
                }
                guard made.isStillAtPath else {
                    sem_close(sem)
                    continue
                }
                handle = sem
                file = made
                created = true
                return
            case .failure(.fileExists): continue
            case .failure(let err): throw site.error("sem_open", err, einval: .keyError, detail: name)
            }
        }
    }

    var fastPath: SemaphoreFastPath { handle.map { .posix($0) } ?? .none }

    func acquire(deadline: Deadline?, site: CallSite) throws(SharedMemoryError) -> Bool {
        guard let handle else { throw site.refusal(.keyError, "the semaphore is closed") }
        while true {
            let timeout = deadline?.remaining ?? -1
            switch valueOrErrno(retryOnInterrupt: false, { shm_shim_sem_wait(handle, timeout) }) {
            case .success: return true
            case .failure(.interrupted): continue
            case .failure(.timedOut), .failure(.resourceTemporarilyUnavailable): return false
            case .failure(let err): throw site.error(timeout < 0 ? "sem_wait" : "sem_clockwait", err, detail: name)
            }
        }
    }

    /// `n` posts; on a failure the ones made are taken back, so a release is all or nothing (as in Qt).
    func release(_ n: Int, site: CallSite) throws(SharedMemoryError) {
        guard let handle else { throw site.refusal(.keyError, "the semaphore is closed") }
        for done in 0..<n {
            if case .failure(let err) = valueOrErrno({ sem_post(handle) }) {
                for _ in 0..<done { _ = sem_trywait(handle) }
                throw site.error("sem_post", err, einval: .outOfResources, detail: name)
            }
        }
    }

    func value(site: CallSite) throws(SharedMemoryError) -> Int {
        guard let handle else { throw site.refusal(.keyError, "the semaphore is closed") }
        var value: Int32 = 0
        _ = try site.check("sem_getvalue", detail: name) { sem_getvalue(handle, &value) }
        return Int(value)
    }

    /// No other open file description records a use (one `F_OFD_GETLK`), and then no other process maps the
    /// semaphore's file (/proc/PID/maps: every `sem_open` maps it, Qt's included; only processes of the
    /// file's owner and root when it is 0600).
    func noOtherProcessCanHold() -> Bool {
        guard handle != nil, file.isStillAtPath else { return false }
        guard case .success(0) = valueOrErrno({ shm_shim_ofd_conflicts(file.fd.rawValue, 1, ObjectFile.usageBase, 1) }) else {
            return false
        }
        let status = file.status
        let ownerOnly = status.permissions.rawValue & 0o077 == 0
        return !ProcessMaps.anyProcessMaps(
            device: UInt64(status.deviceID.rawValue), inode: UInt64(status.inode.rawValue), excluding: getpid(),
            ownerUID: ownerOnly ? status.userID.rawValue : nil)
    }

    func dropUsageRecord() { file.releaseUsageRecords() }

    func releaseUsageForClose() { if handle != nil { file.releaseUsageRecords() } }

    func close(removeIfUnused: Bool, _ stillRemovable: () -> Bool) {
        guard let handle else { return }
        sem_close(handle)
        self.handle = nil
        if removeIfUnused && file.mayRemoveManagedObject() && stillRemovable() {
            sem_unlink(name)
        }
    }

    deinit { close(removeIfUnused: false) { false } }
}
