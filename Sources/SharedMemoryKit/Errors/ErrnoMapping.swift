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
        default: .unknown
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
        default: "errno \(error.rawValue)"
        }
    }
}
