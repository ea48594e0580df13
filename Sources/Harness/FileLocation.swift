import Foundation
import SharedMemoryKit

/// Where a `kind: file` resource lives: `dir: tmpfs` (/dev/shm), `disk` (a disk-backed temp dir), `runtime`
/// (XDG_RUNTIME_DIR, the per-user tmpfs), or a path to a directory.
enum FileLocation {
    static func directory(for dir: String) -> String? {
        let environment = ProcessInfo.processInfo.environment
        switch dir {
        case "tmpfs":
            return isDirectory("/dev/shm") ? "/dev/shm" : nil
        case "disk":
            let candidates = [environment["TMPDIR"], "/var/tmp", "/tmp"].compactMap { $0 }.filter { !$0.isEmpty }
            return candidates.first { isDirectory($0) && (try? FileSystemType.of(path: $0))?.isMemoryBacked == false }
        case "runtime":
            if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
                return isDirectory(runtime) ? runtime : nil
            }
            // Unset (a root shell, a CI container): where logind makes it, as Qt's QStandardPaths looks too, if it
            // is this user's own 0700 folder.
            let fallback = "/run/user/\(geteuid())"
            var status = stat()
            guard lstat(fallback, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, status.st_uid == geteuid(),
                  status.st_mode & 0o777 == 0o700 else { return nil }
            return fallback
        default:
            return isDirectory(dir) ? dir : nil
        }
    }

    static func unavailableReason(_ dir: String) -> String? {
        guard directory(for: dir) == nil else { return nil }
        switch dir {
        case "tmpfs": return "dir: tmpfs needs /dev/shm"
        case "disk": return "dir: disk needs a disk-backed temp directory (TMPDIR, /var/tmp and /tmp are all in memory here)"
        case "runtime":
            if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
                return "dir: runtime: XDG_RUNTIME_DIR (\(runtime)) is not a directory"
            }
            return "dir: runtime needs XDG_RUNTIME_DIR, which is not set here (nor is /run/user/\(geteuid()) this user's 0700 folder)"
        default: return "dir: \(dir) is not a directory"
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }
}
