import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A System V semaphore set keyed by `ftok(keyfile, type)`, operated on semaphore 0 with `SEM_UNDO`, as Qt does.
///
/// Sets this library creates have two semaphores instead of Qt's one: Qt only ever uses number 0 and opens
/// sets with `nsems` 1, which an existing larger set satisfies; the second semaphore marks the set as
/// created by this library, so that it is removed with its last user. Qt's sets (one semaphore) are never
/// removed by us.
final class SystemVSemaphore: SemaphoreBackend {
    static let managedSetSize: Int32 = 2

    let created: Bool
    private var keyFile: ObjectFile
    private var semid: Int32
    private var managed: Bool
    private let key: NativeIPCKey
    private let initialValue: Int32
    private let allowForeignOwner: Bool

    init(key: NativeIPCKey, initialValue: Int32, allowForeignOwner: Bool, site: CallSite) throws(SharedMemoryError) {
        self.key = key
        self.initialValue = initialValue
        self.allowForeignOwner = allowForeignOwner
        let projectID = key.type.projectID!
        var attempt = 0
        while true {
            attempt += 1
            let file = try ObjectFile.openKeyFile(
                key.nativeKey, create: true, allowForeignOwner: allowForeignOwner, site: site)
            try file.recordUse(slot: projectID, site: site)
            // A remover may have unlinked the file between our open and our lock: start again.
            guard file.isStillAtPath else {
                if attempt < 100 { continue }
                throw site.refusal(.keyError, "the key file \(key.nativeKey) keeps disappearing")
            }
            let ipcKey = file.ftokKey(projectID: projectID)
            let hex = "key 0x" + String(UInt32(bitPattern: ipcKey), radix: 16)
            let flags = IPC_CREAT | IPC_EXCL | 0o600
            switch valueOrErrno({ semget(ipcKey, Self.managedSetSize, flags) }) {
            case .success(let id):
                semid = id
                created = true
                managed = true
                if case .failure(let err) = valueOrErrno({ shm_shim_semctl_setval(id, 0, initialValue) }) {
                    _ = shm_shim_semctl_rmid(id)
                    if file.created && file.mayRemoveKeyFile() { file.unlinkIfStillAtPath() }
                    throw site.error("semctl(SETVAL)", err, detail: hex)
                }
            case .failure(.fileExists):
                let id: Int32
                switch valueOrErrno({ semget(ipcKey, 0, 0o600) }) {
                case .success(let value): id = value
                case .failure(let err) where (err == .noSuchFileOrDirectory || err == .identifierRemoved) && attempt < 100:
                    continue  // removed between the two calls (a Qt owner does that): start again
                case .failure(let err): throw site.error("semget", err, detail: hex)
                }
                var uid: uid_t = 0
                var cuid: uid_t = 0
                var nsems: UInt = 0
                _ = try site.check("semctl(IPC_STAT)", detail: hex) { shm_shim_semctl_stat(id, &uid, &cuid, nil, &nsems) }
                // Owner and creator both this user: a stranger's set handed over with IPC_SET is no lock of ours.
                if !allowForeignOwner, let refusal = SystemVOwnership.refusal("semaphore set \(id) (\(hex))", uid: uid, cuid: cuid) {
                    throw site.refusal(.permissionDenied, refusal)
                }
                semid = id
                created = false
                // Ours to remove only if this user made it (a foreign set used with allowForeignOwner never is).
                managed = nsems == UInt(Self.managedSetSize) && SystemVOwnership.refusal("", uid: uid, cuid: cuid) == nil
            case .failure(let err):
                // Leave nothing behind: the key file this call made goes, unless another user already records a use.
                if file.created && file.mayRemoveKeyFile() { file.unlinkIfStillAtPath() }
                throw Self.creationError(err, detail: hex, site: site)
            }
            keyFile = file
            return
        }
    }

    var fastPath: SemaphoreFastPath { semid >= 0 ? .systemV(semid) : .none }

    func acquire(deadline: Deadline?, site: CallSite) throws(SharedMemoryError) -> Bool {
        try operate(-1, deadline: deadline, site: site)
    }

    func release(_ n: Int, site: CallSite) throws(SharedMemoryError) {
        _ = try operate(Int16(n), deadline: nil, site: site)
    }

    func value(site: CallSite) throws(SharedMemoryError) -> Int {
        Int(try site.check("semctl(GETVAL)") { shm_shim_semctl_getval(semid, 0) })
    }

    /// `semop` with `SEM_UNDO`, retried after EINTR with the remaining time. If the set was removed under us
    /// (a Qt owner does that), it is opened again, as Qt does.
    private func operate(_ op: Int16, deadline: Deadline?, site: CallSite) throws(SharedMemoryError) -> Bool {
        var reopened = false
        while true {
            var flags = SHM_SHIM_SEM_UNDO
            var timeout: Int64 = -1
            if let deadline {
                timeout = deadline.remaining
                if timeout == 0 { flags |= SHM_SHIM_IPC_NOWAIT }
            }
            let id = semid
            switch valueOrErrno(retryOnInterrupt: false, { shm_shim_semop(id, 0, op, flags, timeout) }) {
            case .success: return true
            case .failure(.interrupted): continue
            case .failure(.resourceTemporarilyUnavailable): return false
            case .failure(let err) where !reopened && (err == .identifierRemoved || err == .invalidArgument):
                reopened = true
                let fresh = try SystemVSemaphore(
                    key: key, initialValue: initialValue, allowForeignOwner: allowForeignOwner, site: site)
                semid = fresh.semid
                keyFile = fresh.keyFile
                managed = fresh.managed
                fresh.semid = -1
            case .failure(let err):
                throw site.error("semop", err, einval: .notFound, detail: "semaphore set \(id)")
            }
        }
    }

    func close(removeIfUnused: Bool, _ stillRemovable: () -> Bool) {
        guard semid >= 0 else { return }
        if removeIfUnused && managed && keyFile.claimForRemoval(slot: key.type.projectID!) && stillRemovable() {
            _ = shm_shim_semctl_rmid(semid)
            // The key file may anchor sets of other ftok ids too: it goes only when none is in use, and only if
            // this library made it (never an existing file that a native key names, never Qt's).
            if keyFile.mayRemoveKeyFile() { keyFile.unlinkIfStillAtPath() }
        }
        semid = -1
    }

    func releaseUsageForClose() { if semid >= 0 { keyFile.releaseUsageRecords() } }

    deinit { close(removeIfUnused: false) { false } }
}
