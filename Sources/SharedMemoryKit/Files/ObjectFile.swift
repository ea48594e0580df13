import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// An open file that stands for an IPC object: a System V key file (Qt's `ftok` file), the file behind a
/// POSIX named semaphore (`/dev/shm/sem.NAME`) or a POSIX segment (`/dev/shm/NAME`).
///
/// It is opened without following symlinks, checked to be a regular file owned by the caller (unless the
/// caller opted in to foreign owners), and it carries the library's *usage record*: every process that uses
/// the object holds a shared open-file-description lock on a reserved byte range far past the end of the
/// data. The kernel drops the lock when the process dies, so "can anyone else still hold it?" has an exact
/// answer even after crashes. Data is never locked: the range starts at 2^63 − 256.
final class ObjectFile {
    let path: String
    let fd: FileDescriptor
    /// This call created the file.
    let created: Bool
    private(set) var status: Stat

    /// Where usage records live: one byte per slot from here. A System V key file can anchor semaphore sets
    /// of several `ftok` project ids (the slot is the id); POSIX objects use slot 0.
    static let usageBase: Int64 = Int64.max - 511

    private init(path: String, fd: FileDescriptor, created: Bool, status: Stat) {
        self.path = path
        self.fd = fd
        self.created = created
        self.status = status
    }

    deinit {
        // Release the usage records (and any claim) explicitly: another thread's posix_spawn may hold a copy
        // of this descriptor for a moment (until its child execs), and the lock belongs to the open file
        // description, which a close alone would not end while that copy exists.
        _ = shm_shim_ofd_lock(fd.rawValue, 2, Self.usageBase, 0, 0)
        try? fd.close()
    }

    /// Opens a System V key file as Qt's `createUnixKeyFile()` does (created 0640 with `O_EXCL`), but never
    /// through a symlink and never one that another user owns (unless `allowForeignOwner`).
    static func openKeyFile(
        _ path: String, create: Bool, allowForeignOwner: Bool, site: CallSite
    ) throws(SharedMemoryError) -> ObjectFile {
        guard create else { return try openExisting(path, allowForeignOwner: allowForeignOwner, site: site) }
        var attempt = 1
        while true {
            let made: ObjectFile?
            do throws(SharedMemoryError) {
                // A bare call site: EEXIST is the common case here, and an error naming the key would render the
                // key (costlier than the open) only to be dropped.
                made = try createExclusive(path, mode: 0o640, site: CallSite(operation: site.operation))
            } catch where error.underlyingError == .fileExists {
                // Qt's createUnixKeyFile: an existing file is used as it is (checked below).
                made = nil
            } catch {
                throw SharedMemoryError(
                    error.code, operation: error.operation, call: error.call, underlyingError: error.underlyingError,
                    object: site.object, detail: error.detail)
            }
            if let made {
                // The mark proves later (to any process using the library) that this library made the file,
                // so that only such key files are ever removed by it.
                do throws(SharedMemoryError) {
                    try made.markManaged(mode: [.ownerReadWrite, .groupRead], site: site)
                } catch {
                    made.unlinkIfStillAtPath()
                    throw error
                }
                return made
            }
            do throws(SharedMemoryError) {
                return try openExisting(path, allowForeignOwner: allowForeignOwner, site: site)
            } catch where error.underlyingError == .noSuchFileOrDirectory && attempt < 100 {
                // The last user of another object unlinked the existing file between our O_EXCL create (EEXIST)
                // and this open: make it again.
                attempt += 1
            }
        }
    }

    /// Creates `path` with `O_EXCL` and `O_NOFOLLOW` (never through a symlink, never an existing file).
    /// - Throws: `alreadyExists` (with `EEXIST`) when the path exists.
    static func createExclusive(_ path: String, mode: UInt32, site: CallSite) throws(SharedMemoryError) -> ObjectFile {
        let flags = SHM_SHIM_O_RDWR | SHM_SHIM_O_CREAT | SHM_SHIM_O_EXCL | SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC
        let raw = try site.check("open", einval: .keyError, detail: path) { shm_shim_open(path, flags, mode) }
        let fd = FileDescriptor(rawValue: raw)
        do {
            return ObjectFile(path: path, fd: fd, created: true, status: try fd.stat())
        } catch {
            try? fd.close()
            unlink(path)
            throw site.error("fstat", error, detail: path)
        }
    }

    /// Opens an existing object file read-write (read-only if that is all the caller may do), refusing
    /// symlinks, non-regular files and, unless `allowForeignOwner`, files another user owns.
    ///
    /// The open never blocks: it uses `O_NONBLOCK` (a FIFO planted at the path would otherwise block a
    /// read-only open until a writer comes), the type is checked with `fstat` on the descriptor before
    /// anything else is done with it, and `O_NONBLOCK` is cleared again on the regular file.
    static func openExisting(
        _ path: String, allowForeignOwner: Bool, site: CallSite
    ) throws(SharedMemoryError) -> ObjectFile {
        let base = SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC | O_NONBLOCK
        var result = valueOrErrno { shm_shim_open(path, base | SHM_SHIM_O_RDWR, 0) }
        if case .failure(let err) = result, err == .permissionDenied || err == .isDirectory {
            result = valueOrErrno { shm_shim_open(path, base | SHM_SHIM_O_RDONLY, 0) }
        }
        let raw: CInt
        switch result {
        case .success(let value): raw = value
        case .failure(.tooManySymbolicLinkLevels):
            throw site.refusal(.permissionDenied, "\(path) is a symbolic link; refusing to follow it")
        case .failure(.noSuchAddressOrDevice), .failure(.isDirectory):
            // A socket (or a device without a driver): open(2) refuses it before we could fstat it.
            throw site.refusal(.keyError, Self.notRegularDetail(path, lstatOf: path))
        case .failure(let err): throw site.error("open", err, einval: .keyError, detail: path)
        }
        let fd = FileDescriptor(rawValue: raw)
        let file: ObjectFile
        do {
            file = ObjectFile(path: path, fd: fd, created: false, status: try fd.stat())
        } catch {
            try? fd.close()
            throw site.error("fstat", error, detail: path)
        }
        guard file.status.type == .regular else {
            throw site.refusal(.keyError, Self.notRegularDetail(path, type: file.status.type, owner: file.status.userID.rawValue))
        }
        // Back to blocking mode: the OFD lock waits and mmap do not care, but nothing else should see it.
        let flags = fcntl(raw, F_GETFL)
        if flags >= 0 { _ = fcntl(raw, F_SETFL, flags & ~O_NONBLOCK) }
        try file.checkOwner(allowForeignOwner: allowForeignOwner, site: site)
        return file
    }

    /// "PATH is a FIFO (owned by uid N), not a regular file; refusing to use it".
    static func notRegularDetail(_ path: String, type: FileType?, owner: UInt32?) -> String {
        let kind: String
        switch type {
        case .some(.fifo): kind = "a FIFO"
        case .some(.directory): kind = "a directory"
        case .some(.socket): kind = "a socket"
        case .some(.characterSpecial): kind = "a character device"
        case .some(.blockSpecial): kind = "a block device"
        case .some(.symbolicLink): kind = "a symbolic link"
        default: kind = "not a regular file"
        }
        let whose = owner.map { " (owned by uid \($0))" } ?? ""
        return kind == "not a regular file"
            ? "\(path)\(whose) is not a regular file; refusing to use it"
            : "\(path) is \(kind)\(whose), not a regular file; refusing to use it"
    }

    static func notRegularDetail(_ path: String, lstatOf: String) -> String {
        let status = try? FilePath(lstatOf).stat(followTargetSymlink: false)
        return notRegularDetail(path, type: status?.type, owner: status?.userID.rawValue)
    }

    /// Refuses a file that another user owns, unless the caller opted in. A file's owner is its creator
    /// (only root can give a file away), so this is also the "made by another user" check.
    func checkOwner(allowForeignOwner: Bool, site: CallSite) throws(SharedMemoryError) {
        let owner = status.userID.rawValue
        if !allowForeignOwner && owner != geteuid() {
            throw site.refusal(
                .permissionDenied,
                "\(path) is owned by uid \(owner) (created by another user), not by this process (uid \(geteuid())); "
                    + "set allowForeignOwner to use it")
        }
    }

    /// `ftok(path, projectID)` computed from the open file, so that nobody can swap the file between the check
    /// and the key (glibc's formula: project id, low byte of the device, low 16 bits of the inode).
    func ftokKey(projectID: Int32) -> key_t {
        let inode = UInt32(truncatingIfNeeded: status.inode.rawValue) & 0xFFFF
        let device = UInt32(truncatingIfNeeded: status.deviceID.rawValue) & 0xFF
        let id = UInt32(truncatingIfNeeded: projectID) & 0xFF
        return key_t(bitPattern: inode | device << 16 | id << 24)
    }

    /// Reads the file's status again (after a size change).
    func refreshStatus() {
        if let refreshed = try? fd.stat() { status = refreshed }
    }

    /// Whether the path still names this very file (it was not removed or replaced).
    var isStillAtPath: Bool {
        guard let current = try? FilePath(path).stat(followTargetSymlink: false) else { return false }
        return current.inode == status.inode && current.deviceID == status.deviceID
    }

    // MARK: usage record

    /// Records this process as a user of the object (a shared lock; waits while a remover holds it).
    func recordUse(slot: Int32 = 0, site: CallSite) throws(SharedMemoryError) {
        _ = try site.check("fcntl(F_OFD_SETLKW)", detail: path) {
            shm_shim_ofd_lock(fd.rawValue, 0, Self.usageBase + Int64(slot), 1, 1)
        }
    }

    /// Drops this description's usage records (and any claim): the file stays open.
    func releaseUsageRecords() {
        _ = shm_shim_ofd_lock(fd.rawValue, 2, Self.usageBase, 0, 0)
    }

    /// Claims the object for removal: succeeds only if no other open file description records a use in
    /// `slot` (nil: in any slot). The claim holds until the file is closed.
    func claimForRemoval(slot: Int32? = 0) -> Bool {
        let start = Self.usageBase + Int64(slot ?? 0)
        let length: Int64 = slot == nil ? 256 : 1
        if case .success = valueOrErrno({ shm_shim_ofd_lock(fd.rawValue, 1, start, length, 0) }) {
            return true
        }
        // A read-only descriptor cannot take an exclusive lock; ask instead (callers hold the object's lock).
        if case .success(0) = valueOrErrno({ shm_shim_ofd_conflicts(fd.rawValue, 1, start, length) }) {
            return true
        }
        return false
    }

    // MARK: the "managed by this library" mark

    /// Objects this library created carry the sticky bit (ignored by the kernel on regular files): only they
    /// are removed when their last library user is done. Objects Qt created are left to Qt.
    /// Read from the file now: the creator marks it right after making it, so a mark taken at open may be old.
    var isManaged: Bool {
        refreshStatus()
        return status.permissions.contains(.saveText)
    }

    func markManaged(mode: FilePermissions, site: CallSite) throws(SharedMemoryError) {
        _ = try site.check("fchmod", detail: path) { fchmod(fd.rawValue, mode_t(mode.rawValue) | S_ISVTX) }
        refreshStatus()
    }

    /// The removal rule for POSIX objects: this library made it, no other process using the library records a
    /// use, and the path still names it. The claim holds until the file is closed.
    func mayRemoveManagedObject() -> Bool {
        isProvablyOurs && claimForRemoval() && isStillAtPath
    }

    // MARK: ownership proof (what may ever be removed)

    /// Proof that this library made the file for this user: it carries the library's mark (set only on a
    /// file this library created with `O_EXCL`, through that descriptor) and this user owns it (a stranger's
    /// file, used with `allowForeignOwner`, is never ours to remove, whatever its mode). Read fresh.
    var isProvablyOurs: Bool {
        isManaged && status.userID.rawValue == geteuid()
    }

    /// The removal rule for key files: provably ours and still empty (the library never writes to a key file),
    /// no usage record of any process using the library in any slot, and the path still names the file we
    /// opened. Qt's key files and files the library did not make (a native key naming an existing file) are
    /// never removed; `shm-harness clean` handles Qt's leftovers.
    func mayRemoveKeyFile() -> Bool {
        isProvablyOurs && status.size == 0 && claimForRemoval(slot: nil) && isStillAtPath
    }

    /// Unlinks the path if it still names this file.
    func unlinkIfStillAtPath() {
        if isStillAtPath { unlink(path) }
    }
}
