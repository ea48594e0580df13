import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A POSIX segment (`shm_open`), as Qt's POSIX backend makes it: named by the native key, 0600, the
/// descriptor kept open while attached.
///
/// Unlike Qt (which never unlinks on Linux), a segment this library created (sticky bit set) is unlinked when
/// the last process using this library detaches: every attacher records its use on the segment's file, and
/// the kernel forgets the record of a process that dies. Segments Qt created are left as Qt leaves them.
final class POSIXSegment: SegmentBackend {
    private let key: NativeIPCKey
    private let allowForeignOwner: Bool
    private var file: ObjectFile?
    private var address: UnsafeMutableRawPointer?
    private(set) var size = 0
    private(set) var access = SharedMemory.AccessMode.readWrite

    init(key: NativeIPCKey, allowForeignOwner: Bool) {
        self.key = key
        self.allowForeignOwner = allowForeignOwner
    }

    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: address, count: size) }

    /// The file's size now (`fstat`): another process may have shrunk it under the mapping.
    func backedSize() -> Int? {
        guard let file else { return nil }
        var status = stat()
        guard fstat(file.fd.rawValue, &status) == 0 else { return nil }
        return Int(status.st_size)
    }

    private var name: String { key.nativeKey }
    /// glibc's path of the object: /dev/shm + the name without its leading slashes.
    private var path: String { "/dev/shm/" + name.drop(while: { $0 == "/" }) }

    /// The name must be one path component (glibc refuses an inner slash with EINVAL; say so first).
    private func checkName(_ site: CallSite) throws(SharedMemoryError) {
        let bare = name.drop(while: { $0 == "/" })
        guard !bare.isEmpty, !bare.contains("/") else {
            throw site.refusal(.keyError, "bad name: a POSIX object name is one path component, not \(name)")
        }
    }

    func create(size: Int, site: CallSite) throws(SharedMemoryError) {
        try checkName(site)
        // shm_open(O_CREAT|O_EXCL, 0600) is this open on glibc; opening the path ourselves keeps the descriptor.
        let made = try ObjectFile.createExclusive(path, mode: 0o600, site: site)
        do throws(SharedMemoryError) {
            try made.recordUse(site: site)
            try made.markManaged(mode: [.ownerReadWrite], site: site)
            // Reserve every byte now: a full /dev/shm is an error here, not a SIGBUS on first touch.
            let fdRaw = made.fd.rawValue
            var result: Int32
            repeat { result = posix_fallocate(fdRaw, 0, off_t(size)) } while result == EINTR
            if result != 0 {
                throw site.error(
                    "posix_fallocate", Errno(rawValue: result), einval: .invalidSize, detail: "\(name), size \(size)")
            }
            made.refreshStatus()
            file = made
        } catch {
            made.unlinkIfStillAtPath()
            throw error
        }
    }

    func attach(_ access: SharedMemory.AccessMode, site: CallSite) throws(SharedMemoryError) {
        try checkName(site)
        let current: ObjectFile
        if let file {
            current = file
        } else {
            current = try ObjectFile.openExisting(path, allowForeignOwner: allowForeignOwner, site: site)
            try current.recordUse(site: site)
            guard current.isStillAtPath else { throw site.refusal(.notFound, "\(name) was removed while attaching") }
        }
        let length = Int(current.status.size)
        // Size 0: its creator has made the name but not sized it yet (or died in between). Under a lock taken on
        // the semaphore of a segment that has just gone (a last detach removes both), an attacher can get here
        // while a new segment is being made: nothing to attach to yet, as a moment earlier.
        guard length > 0 else { throw site.refusal(.notFound, "\(name) has size 0: it is being created (or its creator died before sizing it)") }
        let protection = access == .readOnly ? PROT_READ : PROT_READ | PROT_WRITE
        let mapped = try site.checkPointer("mmap", detail: "\(name), size \(length)") {
            () -> UnsafeMutableRawPointer? in
            let pointer = mmap(nil, length, protection, MAP_SHARED, current.fd.rawValue, 0)
            return pointer == UnsafeMutableRawPointer(bitPattern: -1) ? nil : pointer
        }
        file = current
        address = mapped
        size = length
        self.access = access
    }

    func detach(site: CallSite) throws(SharedMemoryError) {
        if let address {
            _ = try site.check("munmap") { munmap(address, size) }
            self.address = nil
        }
        _ = destroyIfUnused()
        file = nil
    }

    /// Unlinks the segment when this library created it and no other process using the library records a use.
    func destroyIfUnused() -> Bool {
        guard let file else { return false }
        guard file.mayRemoveManagedObject() else { return false }
        shm_unlink(name)
        return true
    }

    /// POSIX has no attach count: a process is attached when it maps the segment's file, which
    /// /proc/PID/maps shows (device and inode). A symlink planted at the path is no segment, and a segment
    /// already unlinked is not asked about (nobody can attach to it any more). A segment of mode 0600 (Qt's and
    /// ours) can only have been mapped by its owner's and root's processes, so only their maps are read; the
    /// cost does not grow with other users' processes.
    func isAttachedByAnyProcess() -> Bool {
        guard let status = try? FilePath(path).stat(followTargetSymlink: false), status.type == .regular else {
            return false
        }
        // Group or others may open it (not made by Qt or this library): every process is a candidate.
        let ownerOnly = status.permissions.rawValue & 0o077 == 0
        return ProcessMaps.anyProcessMaps(
            device: UInt64(status.deviceID.rawValue), inode: UInt64(status.inode.rawValue),
            ownerUID: ownerOnly ? status.userID.rawValue : nil)
    }

    deinit {
        if let address { munmap(address, size) }
    }
}
