import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Where run journals live (docs/journal.md): `<runtime>/shm-harness/runs/<token>.journal`, where `<runtime>`
/// is `$XDG_RUNTIME_DIR` when it is set, is a directory owned by this user and has mode 0700, and otherwise
/// `/tmp/shm-harness-<uid>`. Every level is refused if it is a symlink, not a directory, not owned by this
/// user, or accessible by others.
public enum JournalDirectory {
    /// The `<runtime>` directory for this process (not created, not checked beyond the XDG rule).
    public static func runtimeDirectory(uid: UInt32 = geteuid(), xdgRuntimeDir: String? = environment("XDG_RUNTIME_DIR"))
        -> String
    {
        if let xdg = xdgRuntimeDir, xdg.hasPrefix("/"), case .success(let status) = HousekeepingIO.lstatus(xdg),
            (status.st_mode & S_IFMT) == S_IFDIR, status.st_uid == uid, (status.st_mode & 0o777) == 0o700
        {
            return xdg
        }
        return "/tmp/shm-harness-\(uid)"
    }

    /// The folder of journals: `<runtime>/shm-harness/runs`.
    public static func runsDirectory(uid: UInt32 = geteuid(), xdgRuntimeDir: String? = environment("XDG_RUNTIME_DIR"))
        -> String
    {
        runtimeDirectory(uid: uid, xdgRuntimeDir: xdgRuntimeDir) + "/shm-harness/runs"
    }

    /// The journal file of a run.
    public static func path(forToken token: String) -> String { runsDirectory() + "/" + token + RunJournal.fileExtension }

    /// Creates the runs folder (and the levels above it that are this library's: `/tmp/shm-harness-<uid>`,
    /// `shm-harness`, `runs`) with mode 0700 and checks every level. Returns its path.
    /// - Throws: `permissionDenied` naming the level that is a symlink, not a directory, another user's or
    ///   open to others; the `mkdir` error otherwise.
    @discardableResult
    public static func prepare() throws(SharedMemoryError) -> String {
        let site = CallSite(operation: "journal", object: nil)
        let runtime = runtimeDirectory()
        for level in [runtime, runtime + "/shm-harness", runtime + "/shm-harness/runs"] {
            if case .failure(let err) = valueOrErrno({ mkdir(level, 0o700) }), err != .fileExists {
                throw site.error("mkdir", err, detail: level)
            }
            try check(level, site: site)
        }
        return runtime + "/shm-harness/runs"
    }

    /// The runs folder if it exists and passes the rules; nil if it does not exist.
    /// - Throws: `permissionDenied` when a level exists but breaks the rules.
    public static func existingRunsDirectory(uid: UInt32 = geteuid()) throws(SharedMemoryError) -> String? {
        let site = CallSite(operation: "journal", object: nil)
        let runtime = runtimeDirectory(uid: uid)
        for level in [runtime, runtime + "/shm-harness", runtime + "/shm-harness/runs"] {
            if case .failure(.noSuchFileOrDirectory) = HousekeepingIO.lstatus(level) { return nil }
            try check(level, uid: uid, site: site)
        }
        return runtime + "/shm-harness/runs"
    }

    /// Checks one level: a real directory, owned by `uid`, no access for group or others.
    static func check(_ path: String, uid: UInt32 = geteuid(), site: CallSite) throws(SharedMemoryError) {
        let status: stat
        switch HousekeepingIO.lstatus(path) {
        case .success(let value): status = value
        case .failure(let err): throw site.error("lstat", err, detail: path)
        }
        if (status.st_mode & S_IFMT) == S_IFLNK {
            throw site.refusal(.permissionDenied, "\(path) is a symbolic link; refusing to follow it")
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw site.refusal(.permissionDenied, "\(path) is not a directory")
        }
        guard status.st_uid == uid else {
            throw site.refusal(.permissionDenied, "\(path) is owned by uid \(status.st_uid), not by uid \(uid)")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw site.refusal(
                .permissionDenied,
                "\(path) has mode \(String(status.st_mode & 0o7777, radix: 8)); it must not be accessible by others")
        }
    }

    /// Every journal in a runs folder, sorted by path; files that cannot be read come back as problems.
    public static func journals(in directory: String, allowForeignOwner: Bool = false) -> (
        journals: [RunJournal], problems: [SharedMemoryError]
    ) {
        var journals: [RunJournal] = []
        var problems: [SharedMemoryError] = []
        for name in HousekeepingIO.directoryEntries(directory).sorted() where name.hasSuffix(RunJournal.fileExtension) {
            do throws(SharedMemoryError) {
                journals.append(try RunJournal.read(at: directory + "/" + name, allowForeignOwner: allowForeignOwner))
            } catch {
                problems.append(error)
            }
        }
        return (journals, problems)
    }

    /// Other users' runs folders that this process can read (root): `/tmp/shm-harness-<uid>/shm-harness/runs`
    /// and `/run/user/<uid>/shm-harness/runs`. Each must pass the rules for its owner.
    public static func otherUsersRunsDirectories() -> [String] {
        var found: [String] = []
        let me = geteuid()
        var candidates: [(String, UInt32)] = []
        for name in HousekeepingIO.directoryEntries("/tmp") where name.hasPrefix("shm-harness-") {
            if let uid = UInt32(name.dropFirst("shm-harness-".count)), uid != me { candidates.append(("/tmp/" + name, uid)) }
        }
        for name in HousekeepingIO.directoryEntries("/run/user") {
            if let uid = UInt32(name), uid != me { candidates.append(("/run/user/" + name, uid)) }
        }
        let site = CallSite(operation: "journal", object: nil)
        for (runtime, uid) in candidates {
            let levels = [runtime, runtime + "/shm-harness", runtime + "/shm-harness/runs"]
            var ok = true
            for level in levels {
                do throws(SharedMemoryError) { try check(level, uid: uid, site: site) } catch { ok = false; break }
            }
            if ok { found.append(levels[2]) }
        }
        return found
    }

    public static func environment(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }
}

/// A run journal (docs/journal.md, version 1), as read back: who wrote it, whether that run is still going,
/// and the objects it may have made.
public struct RunJournal: Sendable, Equatable {
    public static let fileExtension = ".journal"
    public static let header = "shm-harness-journal 1"

    /// The journal file.
    public var path: String
    /// The run token (from the `run` record; the file name's stem if that record is missing).
    public var token: String
    /// The runner's pid and start time (clock ticks since boot, /proc/PID/stat field 22).
    public var runnerPID: Int32?
    public var runnerStartTime: UInt64?
    /// When the run started (unix seconds).
    public var time: Int64?
    /// `segment` records: Qt key strings (`systemv:/tmp/qipc_…?legacyKey=…`).
    public var segments: [String] = []
    /// `file` records: files (each with `<path>.lock`) the run may make.
    public var files: [String] = []
    /// `lockfile` records.
    public var lockFiles: [String] = []
    /// The run's private folders (plans, isolated testcases' key files): removed with everything in them.
    public var workDirectories: [String] = []
    /// The run wrote its `end` record (it finished its clean-up).
    public var ended = false
    /// The journal file's owner and last change (unix seconds).
    public var ownerUID: UInt32 = 0
    public var modified: Int64 = 0
    /// Lines that are not valid records ("line 4: ..."); they are skipped.
    public var problems: [String] = []

    /// The segments' keys (records that do not parse as Qt key strings are in ``problems``).
    public var segmentKeys: [NativeIPCKey] { segments.compactMap { NativeIPCKey(string: $0) } }

    public enum State: Sendable, Equatable, CustomStringConvertible {
        /// The runner is alive (same pid and start time).
        case running
        /// The run wrote `end`: its clean-up is done (only the file itself is left).
        case ended
        /// The runner is gone without an `end` record.
        case stale(String)

        public var description: String {
            switch self {
            case .running: "running"
            case .ended: "ended"
            case .stale(let reason): "stale (\(reason))"
            }
        }
    }

    /// A journal without a `run` record is taken to be still being written for this long (seconds).
    public static let headerGrace: Int64 = 60

    /// Whether the run that wrote this journal is still going (docs/journal.md: pid and start time).
    public func state(now: Int64 = Int64(Glibc.time(nil))) -> State {
        if ended { return .ended }
        guard let pid = runnerPID, let start = runnerStartTime else {
            return now - modified >= Self.headerGrace ? .stale("no run record") : .running
        }
        guard let status = ProcessTable.status(of: pid) else { return .stale("runner pid \(pid) is gone") }
        if status.hasEnded { return .stale("runner pid \(pid) has exited") }
        if status.startTime != start {
            return .stale("pid \(pid) is now another process (started at tick \(status.startTime), not \(start))")
        }
        return .running
    }

    public init(path: String, token: String) {
        self.path = path
        self.token = token
    }

    /// Reads a journal: opened without following symlinks, a regular file, owned by this user (unless
    /// `allowForeignOwner`).
    public static func read(at path: String, allowForeignOwner: Bool = false) throws(SharedMemoryError) -> RunJournal {
        let site = CallSite(operation: "journal", object: path)
        let raw = try site.check("open", detail: path) {
            shm_shim_open(path, SHM_SHIM_O_RDONLY | SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC, 0)
        }
        let fd = FileDescriptor(rawValue: raw)
        defer { try? fd.close() }
        var status = stat()
        _ = try site.check("fstat", detail: path) { fstat(raw, &status) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw site.refusal(.keyError, "\(path) is not a regular file") }
        if !allowForeignOwner && status.st_uid != geteuid() {
            throw site.refusal(.permissionDenied, "\(path) is owned by uid \(status.st_uid), not by uid \(geteuid())")
        }
        guard let text = HousekeepingIO.readAll(fd) else { throw site.refusal(.unknown, "cannot read \(path)") }
        var journal = try parse(text, path: path)
        journal.ownerUID = status.st_uid
        journal.modified = Int64(status.st_mtim.tv_sec)
        return journal
    }

    /// Parses a journal's text. - Throws: `keyError` when the first line is not `shm-harness-journal 1`.
    public static func parse(_ text: String, path: String) throws(SharedMemoryError) -> RunJournal {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let stem = name.hasSuffix(fileExtension) ? String(name.dropLast(fileExtension.count)) : name
        var journal = RunJournal(path: path, token: stem)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(header) else {
            throw SharedMemoryError(
                .keyError, operation: "journal", object: path,
                detail: "not a version 1 run journal (the first line is not '\(header)')")
        }
        for (index, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            func problem(_ message: String) { journal.problems.append("line \(index + 1): \(message)") }
            guard words.count >= 2, let value = decode(words[1]) else {
                problem("not a record: \(line)")
                continue
            }
            switch words[0] {
            case "run":
                journal.token = value
                for field in words.dropFirst(2) {
                    let parts = field.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { problem("bad field \(field)"); continue }
                    switch parts[0] {
                    case "pid": journal.runnerPID = Int32(parts[1])
                    case "start": journal.runnerStartTime = UInt64(parts[1])
                    case "time": journal.time = Int64(parts[1])
                    default: break  // later versions may add fields
                    }
                }
                if journal.runnerPID == nil || journal.runnerStartTime == nil { problem("run record without pid= and start=") }
            case "segment":
                if NativeIPCKey(string: value) == nil { problem("not a Qt key string: \(value)") }
                journal.segments.append(value)
            case "file":
                guard value.hasPrefix("/") else { problem("not an absolute path: \(value)"); continue }
                journal.files.append(value)
            case "lockfile":
                guard value.hasPrefix("/") else { problem("not an absolute path: \(value)"); continue }
                journal.lockFiles.append(value)
            case "workdir":
                guard value.hasPrefix("/") else { problem("not an absolute path: \(value)"); continue }
                journal.workDirectories.append(value)
            case "end":
                journal.ended = true
            default:
                problem("unknown record \(words[0])")
            }
        }
        return journal
    }

    /// Percent-encodes a value as plan values are (see ``PercentCoding``).
    public static func encode(_ value: String) -> String { PercentCoding.encode(value) }

    /// Decodes a percent-encoded value (see ``PercentCoding``).
    public static func decode(_ text: Substring) -> String? { PercentCoding.decode(text) }

    /// A token is a file-name stem: not empty, no `/`, not `.` or `..`.
    public static func isValidToken(_ token: String) -> Bool {
        !token.isEmpty && !token.contains("/") && token != "." && token != ".." && !token.contains("\0")
    }
}
