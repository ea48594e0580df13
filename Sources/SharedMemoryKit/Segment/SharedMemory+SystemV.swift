import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A System V segment keyed by `ftok(keyfile, type)`, as Qt's System V backend makes it: key file 0640 in the
/// temp dir, segment 0600, destroyed (`IPC_RMID` and the key file unlinked) by whoever detaches last.
final class SystemVSegment: SegmentBackend {
    private let key: NativeIPCKey
    private let allowForeignOwner: Bool
    private var shmid: Int32 = -1
    private var address: UnsafeMutableRawPointer?
    private(set) var size = 0
    private(set) var access = SharedMemory.AccessMode.readWrite
    /// The key file's identity when we computed the IPC key from it.
    private var keyFile: ObjectFile?

    /// A System V segment cannot shrink.
    func backedSize() -> Int? { nil }

    init(key: NativeIPCKey, allowForeignOwner: Bool) {
        self.key = key
        self.allowForeignOwner = allowForeignOwner
    }

    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: address, count: size) }

    private static func hex(_ key: key_t) -> String { "key 0x" + String(UInt32(bitPattern: key), radix: 16) }

    func create(size: Int, site: CallSite) throws(SharedMemoryError) {
        let file = try ObjectFile.openKeyFile(key.nativeKey, create: true, allowForeignOwner: allowForeignOwner, site: site)
        let ipcKey = file.ftokKey(projectID: key.type.projectID!)
        let flags = IPC_CREAT | IPC_EXCL | 0o600
        switch valueOrErrno({ shmget(ipcKey, size, flags) }) {
        case .success(let id):
            shmid = id
            keyFile = file
        case .failure(let err):
            // Qt's rule: the key file goes if this call made it, unless the segment already existed.
            if file.created && err != .fileExists { file.unlinkIfStillAtPath() }
            throw site.error("shmget", err, einval: .invalidSize, detail: "\(Self.hex(ipcKey)), size \(size)")
        }
    }

    func attach(_ access: SharedMemory.AccessMode, site: CallSite) throws(SharedMemoryError) {
        let file: ObjectFile
        if let keyFile {
            file = keyFile
        } else {
            file = try ObjectFile.openKeyFile(key.nativeKey, create: false, allowForeignOwner: allowForeignOwner, site: site)
        }
        let ipcKey = file.ftokKey(projectID: key.type.projectID!)
        let id = try site.check("shmget", detail: Self.hex(ipcKey)) {
            shmget(ipcKey, 0, access == .readOnly ? 0o400 : 0o600)
        }
        var segmentSize = 0
        var uid: uid_t = 0
        var cuid: uid_t = 0
        _ = try site.check("shmctl(IPC_STAT)", detail: Self.hex(ipcKey)) {
            shm_shim_shmctl_stat(id, &segmentSize, nil, &uid, &cuid, nil, nil, nil)
        }
        if !allowForeignOwner && uid != geteuid() && cuid != geteuid() {
            throw site.refusal(
                .permissionDenied,
                "segment \(id) (\(Self.hex(ipcKey))) belongs to uid \(uid); set allowForeignOwner to use it")
        }
        let pointer = try site.checkPointer("shmat", detail: Self.hex(ipcKey)) {
            shm_shim_shmat(id, access == .readOnly ? 1 : 0)
        }
        shmid = id
        keyFile = file
        address = pointer
        size = segmentSize
        self.access = access
    }

    func detach(site: CallSite) throws(SharedMemoryError) {
        if let address {
            _ = try site.check("shmdt", einval: .notFound) { shmdt(address) }
            self.address = nil
        }
        _ = destroyIfUnused()
    }

    /// Qt's clean-up: when nobody is attached any more, `IPC_RMID` and unlink the key file.
    func destroyIfUnused() -> Bool {
        guard shmid >= 0 else { return false }
        defer { shmid = -1 }
        var attached: UInt = 0
        guard shm_shim_shmctl_stat(shmid, nil, &attached, nil, nil, nil, nil, nil) == 0, attached == 0 else {
            return false
        }
        _ = shm_shim_shmctl_rmid(shmid)
        // With a native (non-legacy) key, the lock semaphore uses the same key file: leave the file to the
        // semaphore, which removes both when its last user is done.
        if key.legacyKey != nil { keyFile?.unlinkIfStillAtPath() }
        return true
    }

    /// The kernel's attach count (`shm_nattch`) counts every process, Qt's included.
    func isAttachedByAnyProcess() -> Bool {
        let site = CallSite(operation: "probe")
        guard let file = try? ObjectFile.openKeyFile(key.nativeKey, create: false, allowForeignOwner: true, site: site)
        else { return false }
        let id = shmget(file.ftokKey(projectID: key.type.projectID!), 0, 0)
        guard id >= 0 else { return false }
        var attached: UInt = 0
        guard shm_shim_shmctl_stat(id, nil, &attached, nil, nil, nil, nil, nil) == 0 else { return false }
        return attached > 0
    }

    deinit {
        if let address { shmdt(address) }
    }
}
