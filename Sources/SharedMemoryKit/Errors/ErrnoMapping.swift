import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// The one errno → ``SharedMemoryError/Code`` table of the library (Qt's `setUnixErrorString`, extended).
///
/// `EINVAL` means different things at different call sites (a size refused by `shmget`, a bad name for
/// `sem_open`), so each call site says what it means there; everything else maps the same everywhere.
enum ErrnoMapping {
    static func code(for error: Errno, einval: SharedMemoryError.Code = .unknown) -> SharedMemoryError.Code {
        switch error {
        case .permissionDenied, .notPermitted: .permissionDenied
        case .fileExists: .alreadyExists
        case .noSuchFileOrDirectory, .identifierRemoved: .notFound
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem, .noMemory, .noSpace, .outOfRange:
            .outOfResources
        case .fileNameTooLong, .tooManySymbolicLinkLevels: .keyError
        case .invalidArgument: einval
        case .timedOut, .resourceTemporarilyUnavailable: .lockError
        case .deadlock: .lockError
        case .previousOwnerDied: .ownerDied
        case .notRecoverable: .lockError
        default: .unknown
        }
    }

    /// What an errno means at call sites where the general table is not precise enough.
    enum Refinement: Sendable {
        /// A call that a memfd seal can refuse (`write`, `ftruncate`, `fallocate`, `mmap`, `F_ADD_SEALS`):
        /// `EPERM` is `sealed`; `EBUSY` (`F_SEAL_WRITE` while a writable shared mapping exists) is `busy`.
        case sealable
        /// A try-lock: `EAGAIN`, `EACCES` (`F_OFD_SETLK`) and `EBUSY` are `busy`.
        case tryLock
        /// A lock or unlock: `EPERM` (not the holder) is `lockError`.
        case lock
        /// A guarded copy from or to mapped file memory: `EFAULT` (the shim's SIGBUS report) is `busError`.
        case guardedAccess
    }

    static func code(
        for error: Errno, refinement: Refinement, einval: SharedMemoryError.Code = .unknown
    ) -> SharedMemoryError.Code {
        switch (refinement, error) {
        case (.sealable, .notPermitted): .sealed
        case (.sealable, .resourceBusy): .busy
        case (.tryLock, .resourceTemporarilyUnavailable), (.tryLock, .permissionDenied), (.tryLock, .resourceBusy):
            .busy
        case (.tryLock, .notPermitted), (.lock, .notPermitted): .lockError
        case (.guardedAccess, .badAddress): .busError
        default: code(for: error, einval: einval)
        }
    }
}

/// The C spelling of an errno value (`EACCES`), for messages that a user can search for.
enum ErrnoNames {
    static func symbol(_ error: Errno) -> String {
        switch error.rawValue {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case ESRCH: "ESRCH"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case ENXIO: "ENXIO"
        case E2BIG: "E2BIG"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case EFBIG: "EFBIG"
        case ENOSPC: "ENOSPC"
        case ESPIPE: "ESPIPE"
        case EROFS: "EROFS"
        case ERANGE: "ERANGE"
        case EDEADLK: "EDEADLK"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case ENOLCK: "ENOLCK"
        case ENOSYS: "ENOSYS"
        case ELOOP: "ELOOP"
        case EIDRM: "EIDRM"
        case EOVERFLOW: "EOVERFLOW"
        case ETIMEDOUT: "ETIMEDOUT"
        case EOWNERDEAD: "EOWNERDEAD"
        case ENOTRECOVERABLE: "ENOTRECOVERABLE"
        case EBADMSG: "EBADMSG"
        case EMSGSIZE: "EMSGSIZE"
        case ECONNRESET: "ECONNRESET"
        case ECONNREFUSED: "ECONNREFUSED"
        case EADDRINUSE: "EADDRINUSE"
        case ENOTSOCK: "ENOTSOCK"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case ETXTBSY: "ETXTBSY"
        default: "errno \(error.rawValue)"
        }
    }
}
