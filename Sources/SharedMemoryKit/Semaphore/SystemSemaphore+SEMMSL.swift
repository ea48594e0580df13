import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension SystemVSemaphore {
    /// The error of a `semget(key, 2, IPC_CREAT | IPC_EXCL)` that failed with `err`. EINVAL there means the set
    /// size is past the kernel's SEMMSL (semaphores per set, the first field of `kernel.sem`): the library's sets
    /// have 2 semaphores where Qt's have 1, so SEMMSL 1 lets Qt work and not this library. That is said, as a
    /// kernel limit (`outOfResources`), not an unknown EINVAL. Same text as libshmh's sem_sysv.c.
    static func creationError(_ err: Errno, detail: String, site: CallSite) -> SharedMemoryError {
        guard err == .invalidArgument else { return site.error("semget", err, detail: detail) }
        let limit = semaphoresPerSetLimit().map { " is \($0)" } ?? " is below 2"
        return SharedMemoryError(
            .outOfResources, operation: site.operation, call: "semget", underlyingError: err, object: site.object,
            detail: "\(detail): this library's semaphore sets need \(managedSetSize) semaphores (Qt's 1; the second "
                + "marks the set as this library's), but kernel.sem SEMMSL (semaphores per set)\(limit)")
    }

    /// SEMMSL of this process's IPC namespace (`/proc/sys/kernel/sem`, first field), nil if unreadable.
    static func semaphoresPerSetLimit() -> Int? {
        let fd = Glibc.open("/proc/sys/kernel/sem", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let digits = buffer[..<count].drop { $0 == 0x20 || $0 == 0x09 }.prefix { $0 >= 0x30 && $0 <= 0x39 }
        return Int(String(decoding: digits, as: UTF8.self))
    }
}
