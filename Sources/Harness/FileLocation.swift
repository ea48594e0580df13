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
            guard let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty, isDirectory(runtime) else { return nil }
            return runtime
        default:
            return isDirectory(dir) ? dir : nil
        }
    }

    static func unavailableReason(_ dir: String) -> String? {
        guard directory(for: dir) == nil else { return nil }
        switch dir {
        case "tmpfs": return "dir: tmpfs needs /dev/shm"
        case "disk": return "dir: disk needs a disk-backed temp directory (TMPDIR, /var/tmp and /tmp are all in memory here)"
        case "runtime": return "dir: runtime needs XDG_RUNTIME_DIR, which is not set here"
        default: return "dir: \(dir) is not a directory"
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }
}
