import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// File system types by mount point, from /proc/self/mounts (the name the kernel reports: tmpfs, ext4, overlay).
enum MountTable {
    /// The type of the file system that holds `path` (the longest mount point that is a prefix of it).
    static func fileSystemType(of path: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (length: Int, type: String)?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let mountPoint = String(fields[1]).replacingOccurrences(of: "\\040", with: " ")
            let matches = target == mountPoint || mountPoint == "/" || target.hasPrefix(mountPoint + "/")
            if matches && mountPoint.count >= (best?.length ?? -1) { best = (mountPoint.count, String(fields[2])) }
        }
        return best?.type
    }

    static func isTmpfs(_ path: String) -> Bool { fileSystemType(of: path) == "tmpfs" }
}
