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
            let note = err == .fileExists ? Self.foreignSegmentNote(file) : ""
            // The key file goes if this call made it. Qt keeps it when the segment already existed, but a segment
            // found through a key file made just now was made through another file (an ftok collision): keeping
            // ours would only leave it behind.
            if file.created && file.mayRemoveKeyFile() { file.unlinkIfStillAtPath() }
            throw site.error("shmget", err, einval: .invalidSize, detail: "\(Self.hex(ipcKey)), size \(size)\(note)")
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
        // Both the owner and the creator must be this user: a stranger can make a segment at a key we will
        // use and give it to us with IPC_SET (the owner changes, the creator stays theirs, and so does control).
        if !allowForeignOwner, let refusal = SystemVOwnership.refusal(
            "segment \(id) (\(Self.hex(ipcKey)))", uid: uid, cuid: cuid)
        {
            throw site.refusal(.permissionDenied, refusal)
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
        var uid: uid_t = 0
        var cuid: uid_t = 0
        guard shm_shim_shmctl_stat(shmid, nil, &attached, &uid, &cuid, nil, nil, nil) == 0, attached == 0 else {
            return false
        }
        // Only a segment this user made and owns is removed (one used with allowForeignOwner never is).
        guard SystemVOwnership.refusal("", uid: uid, cuid: cuid) == nil else { return false }
        _ = shm_shim_shmctl_rmid(shmid)
        // With a native (non-legacy) key, the lock semaphore uses the same key file: leave the file to the
        // semaphore, which removes both when its last user is done. A key file the library did not make
        // (Qt's, or an existing file a native key names) is never removed here.
        if key.legacyKey != nil, let keyFile, keyFile.mayRemoveKeyFile() { keyFile.unlinkIfStillAtPath() }
        return true
    }

    /// The kernel's attach count (`shm_nattch`) counts every process, Qt's included.
    func isAttachedByAnyProcess() -> Bool {
        let site = CallSite(operation: "probe")
        guard let file = try? ObjectFile.openKeyFile(key.nativeKey, create: false, allowForeignOwner: true, site: site)
        else { return false }
        // A key file with several names (hard links) is one ftok key for several keys: the attach count cannot
        // tell this key's users from the other names', and would keep this key's lock semaphore for as long as
        // the others stay. Qt's rule then: the lock goes with its last user of this library.
        guard file.status.linkCount <= 1 else { return false }
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

/// Whom a System V object belongs to: both its owner (`uid`, which `IPC_SET` can change) and its creator
/// (`cuid`, which nothing changes) must be this user; as root, root. Anything else may have been planted by a
/// stranger at a key this user was going to use.
enum SystemVOwnership {
    /// Nil when `uid` and `cuid` are both this process's effective uid; otherwise why `object` is refused.
    static func refusal(_ object: String, uid: uid_t, cuid: uid_t) -> String? {
        let me = geteuid()
        if uid == me && cuid == me { return nil }
        let creator = cuid == me ? "this user" : "uid \(cuid)"
        return "\(object) was created by \(creator) and is owned by uid \(uid), not by this user (uid \(me)) alone; "
            + "set allowForeignOwner to use it"
    }
}
