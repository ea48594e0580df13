import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Facts about processes from /proc: whether a pid is alive, when it started, and which files processes map,
/// hold open or lock (the attach counts that POSIX objects and plain files lack).
public enum ProcessTable {
    /// A process's state letter and start time (clock ticks since boot, /proc/PID/stat field 22).
    public struct Status: Sendable, Equatable {
        public var state: Character
        public var startTime: UInt64
        /// A zombie (`Z`) or dead (`X`) process has ended; only its parent has not reaped it yet.
        public var hasEnded: Bool { state == "Z" || state == "X" }
    }

    /// Reads /proc/PID/stat; nil when there is no such process (or it cannot be read).
    public static func status(of pid: Int32) -> Status? {
        guard pid > 0, let text = HousekeepingIO.readSmallFile("/proc/\(pid)/stat") else { return nil }
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return Status(state: state, startTime: start)
    }

    /// The start time of a running process (field 22 of /proc/PID/stat), as the run journal records it.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let status = status(of: pid), !status.hasEnded else { return nil }
        return status.startTime
    }

    /// Whether a process with this pid exists and has not ended.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let status = status(of: pid) else { return false }
        return !status.hasEnded
    }

    /// Whether `pid` is alive and started no later than `unixTime` (+1 s): a process that started after an
    /// object was made cannot have made it (it only reuses the pid).
    static func isAlive(_ pid: Int32, startedBy unixTime: Int64) -> Bool {
        guard let status = status(of: pid), !status.hasEnded else { return false }
        guard let boot = bootTime, ticksPerSecond > 0 else { return true }
        let started = boot + Int64(status.startTime / UInt64(ticksPerSecond))
        return started <= unixTime + 1
    }

    /// The machine's boot time (unix seconds), from `btime` in /proc/stat.
    static let bootTime: Int64? = {
        guard let text = HousekeepingIO.readSmallFile("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int64(line.dropFirst(6).trimmingSpaces())
        }
        return nil
    }()

    static let ticksPerSecond: Int = sysconf(Int32(_SC_CLK_TCK))

    /// The pids in /proc.
    static func allPIDs() -> [Int32] {
        HousekeepingIO.directoryEntries("/proc").compactMap { Int32($0) }
    }
}

/// A file's identity: device and inode.
struct FileIdentity: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64

    /// Linux's encoding of a device number's major and minor parts (glibc's `gnu_dev_major`/`minor`).
    var major: UInt64 { ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF) }
    var minor: UInt64 { (device & 0xFF) | ((device >> 12) & ~0xFF) }

    init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    init(major: UInt64, minor: UInt64, inode: UInt64) {
        device = (minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & ~0xFF) << 12) | ((major & ~0xFFF) << 32)
        self.inode = inode
    }

    init(_ status: stat) {
        self.init(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }
}

/// One look at every process: which files each maps, holds open and locks. Only processes this process may
/// inspect are seen (the same user's, or all as root), so for other users' processes the answer is "unknown",
/// which callers must treat as "maybe in use" unless the object is the caller's own.
final class ProcessUsage {
    private(set) var mapped: [FileIdentity: Set<Int32>] = [:]
    private(set) var opened: [FileIdentity: Set<Int32>] = [:]
    /// Usage records of this library (shared OFD locks in the reserved range), per file, from /proc/locks.
    private(set) var usageRecords: [FileIdentity: Int] = [:]
    /// Files with any lock held (lock files).
    private(set) var locked: Set<FileIdentity> = []
    /// Processes whose maps or descriptors could not be read.
    private(set) var unreadable = 0

    static func scan(openFiles: Bool = true) -> ProcessUsage {
        let usage = ProcessUsage()
        let me = getpid()
        for pid in ProcessTable.allPIDs() where pid != me {
            if let maps = HousekeepingIO.readSmallFile("/proc/\(pid)/maps") {
                for line in maps.split(separator: "\n") {
                    // "start-end perms offset major:minor inode path"
                    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                    guard fields.count >= 5, let inode = UInt64(fields[4]), inode != 0 else { continue }
                    let dev = fields[3].split(separator: ":")
                    guard dev.count == 2, let major = UInt64(dev[0], radix: 16), let minor = UInt64(dev[1], radix: 16)
                    else { continue }
                    usage.mapped[FileIdentity(major: major, minor: minor, inode: inode), default: []].insert(pid)
                }
            } else {
                usage.unreadable += 1
            }
            if openFiles {
                let dir = "/proc/\(pid)/fd"
                for entry in HousekeepingIO.directoryEntries(dir) {
                    var status = stat()
                    guard case .success = valueOrErrno({ stat(dir + "/" + entry, &status) }) else { continue }
                    guard (status.st_mode & S_IFMT) == S_IFREG else { continue }
                    usage.opened[FileIdentity(status), default: []].insert(pid)
                }
            }
        }
        if let locks = HousekeepingIO.readSmallFile("/proc/locks") {
            for line in locks.split(separator: "\n") {
                // "1: OFDLCK ADVISORY READ -1 00:1a:1234 START END" (waiters have "->" after the number).
                let list = Array(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst())
                if list.first == "->" { continue }
                guard list.count >= 7 else { continue }
                let id = list[4].split(separator: ":")
                guard id.count == 3, let major = UInt64(id[0], radix: 16), let minor = UInt64(id[1], radix: 16),
                    let inode = UInt64(id[2])
                else { continue }
                let file = FileIdentity(major: major, minor: minor, inode: inode)
                usage.locked.insert(file)
                if list[2] == "READ", let start = Int64(list[5]), start >= ObjectFile.usageBase {
                    usage.usageRecords[file, default: 0] += 1
                }
            }
        }
        return usage
    }

    func mappers(of file: FileIdentity) -> Set<Int32> { mapped[file] ?? [] }
    func openers(of file: FileIdentity) -> Set<Int32> { opened[file] ?? [] }
    func records(on file: FileIdentity) -> Int { usageRecords[file] ?? 0 }
    func isLocked(_ file: FileIdentity) -> Bool { locked.contains(file) }
}

/// Small file-system helpers for housekeeping (no Foundation in the library).
enum HousekeepingIO {
    static func readSmallFile(_ path: String, limit: Int = 16 << 20) -> String? {
        guard case .success(let raw) = valueOrErrno({ shm_shim_open(path, SHM_SHIM_O_RDONLY | SHM_SHIM_O_CLOEXEC, 0) })
        else { return nil }
        let fd = FileDescriptor(rawValue: raw)
        defer { try? fd.close() }
        return readAll(fd, limit: limit)
    }

    static func readAll(_ fd: FileDescriptor, limit: Int = 16 << 20) -> String? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count < limit {
            guard let n = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }) else { return nil }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Entry names of a directory, without "." and "..".
    static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// lstat: never follows a symlink.
    static func lstatus(_ path: String) -> Result<stat, Errno> {
        var status = stat()
        return valueOrErrno({ lstat(path, &status) }).map { _ in status }
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return s
    }
}
