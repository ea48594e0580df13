import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Which processes map a file, read from /proc/PID/maps (the attach count that POSIX shared memory lacks).
///
/// Only processes whose maps this process may read are seen: those of the same user, or all of them as root.
enum ProcessMaps {
    /// Whether a process (other than `excluded`) maps a file on /dev/shm with this inode.
    static func anyProcessMaps(inode: UInt64, excluding excluded: pid_t? = nil) -> Bool {
        guard let proc = opendir("/proc") else { return false }
        defer { closedir(proc) }
        let needle = " \(inode) "
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let first = name.utf8.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { continue }
            if let excluded, name == String(excluded) { continue }
            guard let text = readSmallFile("/proc/\(name)/maps") else { continue }
            for line in text.split(separator: "\n") where line.contains(needle) && line.contains("/dev/shm/") {
                // "start-end perms offset dev inode path": the fifth field is the inode.
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                if fields.count >= 5 && fields[4] == Substring(String(inode)) { return true }
            }
        }
        return false
    }

    private static func readSmallFile(_ path: String) -> String? {
        guard let fd = try? FileDescriptor.open(path, .readOnly, options: .closeOnExec) else { return nil }
        defer { try? fd.close() }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = (try? chunk.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
