import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A lock that lives beside the memory, in a file: an exclusive open-file-description lock (`F_OFD_SETLKW`)
/// on byte 0 of the file (docs/lock-layout.md). The kernel drops it when the holder dies, whatever the
/// memory (segment, file, memfd) it protects.
///
/// The file is `<resource path>.lock` (``init(forResourceAt:allowForeignOwner:)``) or a name in the sharing
/// directory (``init(named:in:allowForeignOwner:)``), created 0600 with `O_EXCL`, opened with `O_NOFOLLOW`;
/// a lock file another user owns is refused unless the caller opts in.
///
/// Each ``LockFile`` object is its own open file description: two objects exclude each other even in one
/// process, but threads sharing one object do not. The kernel has no timed wait for OFD locks:
/// ``lock(timeout:)`` retries `F_OFD_SETLK`, sleeping from 1 ms up to 16 ms between tries.
public final class LockFile {
    /// The lock file's path.
    public let path: String
    private var file: ObjectFile?
    public private(set) var isLocked = false

    /// Opens (creating it if needed, 0600, `O_EXCL`) the lock file at `path`.
    ///
    /// - Throws: `permissionDenied` for a symlink or a file another user owns (unless `allowForeignOwner`).
    ///
    /// The corresponding C function is `open` (`O_CREAT | O_EXCL | O_NOFOLLOW`, then `O_NOFOLLOW`).
    public init(path: String, allowForeignOwner: Bool = false) throws(SharedMemoryError) {
        let site = CallSite(operation: "open lock file", object: path)
        self.path = path
        do throws(SharedMemoryError) {
            file = try ObjectFile.createExclusive(path, mode: 0o600, site: site)
        } catch where error.underlyingError == .fileExists {
            file = try ObjectFile.openExisting(path, allowForeignOwner: allowForeignOwner, site: site)
        }
    }

    /// The lock file for a file-backed resource: `<path>.lock`.
    public convenience init(forResourceAt resourcePath: String, allowForeignOwner: Bool = false) throws(SharedMemoryError) {
        try self.init(path: resourcePath + ".lock", allowForeignOwner: allowForeignOwner)
    }

    /// The lock file for a resource without a path (a memfd, a segment): `<directory>/<name>.lock`.
    public convenience init(
        named name: String, in directory: SharingDirectory, allowForeignOwner: Bool = false
    ) throws(SharedMemoryError) {
        guard !name.isEmpty, !name.contains("/") else {
            throw CallSite(operation: "open lock file", object: name).refusal(.keyError, "a lock name has no '/'")
        }
        try self.init(path: directory.path + "/" + name + ".lock", allowForeignOwner: allowForeignOwner)
    }

    deinit { close() }

    /// Waits for the lock without a time limit.
    ///
    /// The corresponding C function is `fcntl(F_OFD_SETLKW)`.
    public func lock() throws(SharedMemoryError) {
        let fd = try descriptor("lock")
        // The error context (the path) is built only on failure.
        if case .failure(let err) = valueOrErrno({ shm_shim_ofd_lock(fd, 1, 0, 1, 1) }) {
            throw site("lock").error("fcntl(F_OFD_SETLKW)", err, refinement: .lock)
        }
        isLocked = true
    }

    /// Takes the lock if no other open file description holds it. - Throws: `busy` when one does.
    ///
    /// The corresponding C function is `fcntl(F_OFD_SETLK)`.
    public func tryLock() throws(SharedMemoryError) {
        let fd = try descriptor("try-lock")
        _ = try site("try-lock").check("fcntl(F_OFD_SETLK)", refinement: .tryLock) { shm_shim_ofd_lock(fd, 1, 0, 1, 0) }
        isLocked = true
    }

    /// Waits for the lock at most `timeout`. - Throws: `lockError` with `ETIMEDOUT` when the time is up.
    ///
    /// The corresponding C functions are `fcntl(F_OFD_SETLK)` and `nanosleep`.
    public func lock(timeout: Duration) throws(SharedMemoryError) {
        let deadline = shm_shim_monotonic_ns() &+ nanoseconds(timeout)
        var pause: Int64 = 1_000_000
        while true {
            do throws(SharedMemoryError) {
                return try tryLock()
            } catch where error.code == .busy {
                let left = deadline - shm_shim_monotonic_ns()
                if left <= 0 {
                    throw site("lock").error(
                        "fcntl(F_OFD_SETLK)", .timedOut, detail: "not acquired within \(timeout)")
                }
                var request = timespec(tv_sec: 0, tv_nsec: Int(min(pause, left)))
                nanosleep(&request, nil)
                pause = min(pause * 2, 16_000_000)
            }
        }
    }

    /// Releases the lock. - Throws: `lockError` when this object does not hold it.
    ///
    /// The corresponding C function is `fcntl(F_OFD_SETLK)` with `F_UNLCK`.
    public func unlock() throws(SharedMemoryError) {
        guard isLocked else { throw site("unlock").refusal(.lockError, "this lock file object does not hold the lock") }
        let fd = try descriptor("unlock")
        if case .failure(let err) = valueOrErrno({ shm_shim_ofd_lock(fd, 2, 0, 1, 0) }) {
            throw site("unlock").error("fcntl(F_OFD_SETLK)", err, refinement: .lock)
        }
        isLocked = false
    }

    /// Closes the file (which releases the lock).
    public func close() {
        file = nil
        isLocked = false
    }

    /// Removes the lock file if its path still names this file, then closes it. Only safe when no other
    /// process uses the lock any more: a process that opened the old file and one that creates a new one
    /// would not exclude each other.
    ///
    /// The corresponding C function is `unlink`.
    public func remove() {
        file?.unlinkIfStillAtPath()
        close()
    }

    private func site(_ operation: String) -> CallSite { CallSite(operation: operation, object: path) }

    private func descriptor(_ operation: String) throws(SharedMemoryError) -> CInt {
        guard let file else { throw site(operation).refusal(.notFound, "the lock file was closed") }
        return file.fd.rawValue
    }
}
