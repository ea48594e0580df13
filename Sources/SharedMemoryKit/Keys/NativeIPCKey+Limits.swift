#if canImport(Glibc)
import Glibc
#endif

extension NativeIPCKey {
    /// The longest file or object name Linux takes (NAME_MAX).
    public static let maximumNameLength = 255
    /// The longest path (PATH_MAX, with its terminating NUL).
    public static let maximumPathLength = 4095

    /// Why this key can never name an object on this system (its name is longer than a file name may be), or
    /// nil. Checked before any system call, so that an absurd key is a `keyError` at once.
    /// - System V: the key file's path is at most PATH_MAX and its name at most NAME_MAX bytes.
    /// - POSIX: the name after `/` is at most NAME_MAX bytes (a file in /dev/shm); a semaphore's is 4 bytes
    ///   shorter, as glibc stores it as `sem.NAME`.
    public func nameLengthProblem(semaphore: Bool) -> String? {
        let bytes = nativeKey.utf8.count
        if type.isSystemV {
            if bytes > Self.maximumPathLength {
                return "the key file's path is \(bytes) bytes; at most \(Self.maximumPathLength) (PATH_MAX)"
            }
            let name = nativeKey.utf8.split(separator: UInt8(ascii: "/")).last?.count ?? 0
            if name > Self.maximumNameLength {
                return "the key file's name is \(name) bytes; at most \(Self.maximumNameLength) (NAME_MAX)"
            }
        } else if type == .posixRealtime {
            let limit = Self.maximumNameLength - (semaphore ? 4 : 0)
            let name = nativeKey.hasPrefix("/") ? bytes - 1 : bytes
            if name > limit {
                return "the \(semaphore ? "semaphore" : "object") name is \(name) bytes; at most \(limit) (NAME_MAX\(semaphore ? ", less glibc's sem. prefix" : ""))"
            }
        }
        return nil
    }

    /// A description that stays short for a key that is too long to be used: errors name it without copying
    /// megabytes into every message.
    var boundedDescription: String {
        guard nativeKey.utf8.count > Self.maximumPathLength || (legacyKey?.utf8.count ?? 0) > Self.maximumPathLength else {
            return toString() ?? "invalid key"
        }
        return "\(type.description):\(nativeKey.prefix(64))… (\(nativeKey.utf8.count) bytes)"
    }
}
