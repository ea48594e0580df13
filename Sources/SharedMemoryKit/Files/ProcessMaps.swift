import CShmShim
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
    /// Whether a process (other than `excluded`) maps a file on /dev/shm with this device and inode.
    ///
    /// The device matters: every IPC-and-mount namespace (an isolated testcase, a container) has a /dev/shm
    /// tmpfs of its own, whose inode numbers start afresh, so another namespace's mapping of another file can
    /// carry the same inode number.
    ///
    /// With `ownerUID`, only processes that could have opened a 0600 file of that owner are read: those whose
    /// `/proc/PID` belongs to that uid or to root (a process's effective uid; a process that is not dumpable
    /// shows as root and is read too). Other users' processes cost one `stat` each, their maps are never read.
    /// A process that mapped the file and then changed every one of its user ids is not seen.
    static func anyProcessMaps(device: UInt64, inode: UInt64, excluding excluded: pid_t? = nil, ownerUID: uid_t? = nil) -> Bool {
        shm_shim_count_process_scan()
        guard let proc = opendir("/proc") else { return false }
        defer { closedir(proc) }
        let procFD = dirfd(proc)
        let needle = " \(inode) "
        let inodeText = Substring(String(inode))
        while let entry = readdir(proc) {
            let isNumber = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.first.map { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } ?? false
            }
            guard isNumber else { continue }
            if let ownerUID {
                var status = stat()
                let found = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    fstatat(procFD, raw.baseAddress!.assumingMemoryBound(to: CChar.self), &status, 0) == 0
                }
                guard found, status.st_uid == ownerUID || status.st_uid == 0 else { continue }
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let excluded, name == String(excluded) { continue }
            guard let text = readSmallFile("/proc/\(name)/maps") else { continue }
            for line in text.split(separator: "\n") where line.contains(needle) && line.contains("/dev/shm/") {
                // "start-end perms offset dev inode path": the fifth field is the inode.
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                if fields.count >= 5, fields[4] == inodeText, let seen = Self.device(fields[3]), seen == Self.majorMinor(device) { return true }
            }
        }
        return false
    }

    /// The `major:minor` field of a maps line (hexadecimal), as numbers.
    static func device(_ field: Substring) -> (UInt64, UInt64)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let major = UInt64(parts[0], radix: 16), let minor = UInt64(parts[1], radix: 16) else { return nil }
        return (major, minor)
    }

    /// glibc's major() and minor() of a `st_dev`.
    static func majorMinor(_ device: UInt64) -> (UInt64, UInt64) {
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        return (major, minor)
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
