import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// One shared-memory object on the machine, as `shm-harness ls` shows it.
public struct IPCObject: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A System V segment (`shmget`).
        case systemVSegment = "sysv-segment"
        /// A System V semaphore set (`semget`).
        case systemVSemaphoreSet = "sysv-semaphore"
        /// A POSIX segment: a file in /dev/shm.
        case posixSegment = "posix-segment"
        /// A POSIX named semaphore: `/dev/shm/sem.NAME`.
        case posixSemaphore = "posix-semaphore"
        /// A Qt key file (`qipc_*` in the temp dir, or a System V key file a run journal names).
        case keyFile = "key-file"
        /// A file or lock file that a run journal names.
        case runFile = "run-file"
    }

    /// Who made it, as far as the object tells.
    public enum Maker: String, Sendable {
        /// Marked by this library: a System V set of 2 semaphores, or a /dev/shm file or key file with the sticky bit.
        case library
        /// Named as Qt names objects (`qipc_…`), or tied to a `qipc_` key file, without the library's mark.
        case qt
        /// Named by a run journal, without either of the above.
        case run
        /// Nothing says (another program's object).
        case unknown
    }

    public var kind: Kind
    /// System V: the id (`shmid`/`semid`).
    public var id: Int32?
    /// System V: the IPC key (0 is `IPC_PRIVATE`).
    public var ipcKey: Int32?
    /// Files: the path (key files, /dev/shm entries, run files).
    public var path: String?
    public var ownerUID: UInt32
    public var creatorUID: UInt32?
    /// Permission bits, with the sticky bit (01000) for files.
    public var mode: UInt32
    /// Bytes (segments, files); nil for semaphores.
    public var size: UInt64?
    /// System V semaphore sets: the number of semaphores.
    public var semaphores: Int?
    /// System V segments: `shm_nattch`; POSIX objects and files: processes that map it (among those this
    /// process can see).
    public var attached: Int?
    /// Processes holding it open (files), among those this process can see.
    public var openBy: Int?
    /// The library's usage records held on the object's file (key file slot, /dev/shm file).
    public var usageRecords: Int?
    /// System V segments: creator and last `shmat`/`shmdt` pid. Semaphore sets: `lastPID` is the last
    /// process to operate on semaphore 0 (`SETVAL` too, so a Qt creator until someone else operates).
    public var creatorPID: Int32?
    public var lastPID: Int32?
    /// Whether the creator is alive (a process with that pid that started before the object was made).
    public var creatorAlive: Bool?
    /// Whether `lastPID` is alive.
    public var lastAlive: Bool?
    /// Processes waiting on semaphore 0 (`GETNCNT`).
    public var waiting: Int?
    public var maker: Maker
    /// For Qt-style objects: the Qt name (`qipc_sharedmemory_<letters><sha1>`) and which class derives it.
    public var qtName: String?
    public var qtKind: IPCObjectKind?
    /// The letters of the legacy key that the Qt name keeps.
    public var keyLetters: String?
    /// The recovered legacy key, and where it came from (`journal TOKEN` or `letters`).
    public var legacyKey: String?
    public var legacyKeySource: String?
    /// System V: the key file whose `ftok` key matches, and the `ftok` project id (the key's top byte).
    public var keyFile: String?
    public var projectID: Int?
    /// For key files: the System V objects it anchors (`sysv-segment 32769`).
    public var anchors: [String] = []
    /// The token of the run journal that names it.
    public var runToken: String?
    /// Stale: nobody attached and the creator dead (see docs/housekeeping.md); nil when not judged
    /// (another program's object, or not enough is known).
    public var stale: Bool?
    /// Why it is stale or in use, or why it is not judged.
    public var reason: String

    /// The object's name for messages: the path, or the kind, id and key.
    public var label: String {
        switch kind {
        case .systemVSegment, .systemVSemaphoreSet:
            let what = kind == .systemVSegment ? "System V segment" : "System V semaphore set"
            var text = "\(what) \(id ?? -1) (key \(IPCKeyText.hex(ipcKey ?? 0))"
            if let keyFile { text += ", \(keyFile)" }
            return text + ")"
        case .posixSegment: return "POSIX segment \(path ?? "?")"
        case .posixSemaphore: return "POSIX semaphore \(path ?? "?")"
        case .keyFile: return "key file \(path ?? "?")"
        case .runFile: return "run file \(path ?? "?")"
        }
    }
}

enum IPCKeyText {
    static func hex(_ key: Int32) -> String {
        let digits = String(UInt32(bitPattern: key), radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}

/// A Qt legacy name: `qipc_sharedmemory_` or `qipc_systemsem_`, the key's ASCII letters, 40 hex digits of SHA-1.
public struct QtLegacyName: Sendable, Equatable {
    public var kind: IPCObjectKind
    public var letters: String
    public var sha1: String

    public init?(_ name: String) {
        var found: IPCObjectKind?
        for kind in IPCObjectKind.allCases where name.hasPrefix(kind.prefix) { found = kind }
        guard let kind = found else { return nil }
        let rest = name.dropFirst(kind.prefix.count)
        guard rest.count >= 40 else { return nil }
        let hash = rest.suffix(40)
        let letters = rest.dropLast(40)
        guard hash.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }),
            letters.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) })
        else { return nil }
        self.kind = kind
        self.letters = String(letters)
        sha1 = String(hash)
    }

    /// The name this would be for `kind`.
    public var name: String { kind.prefix + letters + sha1 }

    /// The legacy key, if it is its letters alone (SHA-1 of the letters matches).
    var keyIfLettersOnly: String? {
        NativeIPCKey.legacyName(letters, kind: kind) == name ? letters : nil
    }
}

/// What `shm-harness ls` sees: every shared-memory object of this user (or of every user), the run journals,
/// and what could not be read.
public struct Inventory: Sendable {
    public var objects: [IPCObject]
    public var journals: [RunJournal]
    /// Journals or directories that could not be read, and other limits of the view.
    public var warnings: [String]
    /// Whether every user's objects are listed.
    public var allUsers: Bool

    /// A key file with no System V object is stale only after this many seconds (it may be between Qt's
    /// `open(O_CREAT)` and its `shmget`).
    public static let orphanKeyFileGrace: Int64 = 2

    /// Looks at the machine.
    /// - Parameters:
    ///   - allUsers: every user's objects (otherwise those the caller owns or created).
    ///   - tempDirectory: where Qt's key files are (default Qt's `QDir::tempPath()`).
    public static func scan(allUsers: Bool = false, tempDirectory: String? = nil) -> Inventory {
        var scanner = Scanner(allUsers: allUsers, tempDirectory: tempDirectory ?? TempDirectory.qtTempPath())
        return scanner.run()
    }
}

/// One row of /proc/sysvipc/shm.
struct SysVSegmentRow {
    var key: Int32, id: Int32, mode: UInt32, size: UInt64, cpid: Int32, lpid: Int32, nattch: Int
    var uid: UInt32, cuid: UInt32, ctime: Int64
}

/// One row of /proc/sysvipc/sem.
struct SysVSemaphoreRow {
    var key: Int32, id: Int32, mode: UInt32, nsems: Int, uid: UInt32, cuid: UInt32, ctime: Int64
}

/// The kernel's tables of System V objects (every object in this IPC namespace, whatever its mode).
enum SysVTables {
    static func segments() -> [SysVSegmentRow] {
        rows("/proc/sysvipc/shm").compactMap { f in
            // key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime ...
            guard f.count >= 14, let key = Int64(f[0]), let id = Int32(f[1]), let mode = UInt32(f[2], radix: 8),
                let size = UInt64(f[3]), let cpid = Int32(f[4]), let lpid = Int32(f[5]), let nattch = Int(f[6]),
                let uid = UInt32(f[7]), let cuid = UInt32(f[9]), let ctime = Int64(f[13])
            else { return nil }
            return SysVSegmentRow(
                key: Int32(truncatingIfNeeded: key), id: id, mode: mode, size: size, cpid: cpid, lpid: lpid,
                nattch: nattch, uid: uid, cuid: cuid, ctime: ctime)
        }
    }

    static func semaphoreSets() -> [SysVSemaphoreRow] {
        rows("/proc/sysvipc/sem").compactMap { f in
            // key semid perms nsems uid gid cuid cgid otime ctime
            guard f.count >= 10, let key = Int64(f[0]), let id = Int32(f[1]), let mode = UInt32(f[2], radix: 8),
                let nsems = Int(f[3]), let uid = UInt32(f[4]), let cuid = UInt32(f[6]), let ctime = Int64(f[9])
            else { return nil }
            return SysVSemaphoreRow(
                key: Int32(truncatingIfNeeded: key), id: id, mode: mode, nsems: nsems, uid: uid, cuid: cuid,
                ctime: ctime)
        }
    }

    private static func rows(_ path: String) -> [[Substring]] {
        guard let text = HousekeepingIO.readSmallFile(path) else { return [] }
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true) }
    }

    /// The low 24 bits of an `ftok` key: the file's identity without the project id.
    static func ftokIdentity(_ status: stat) -> UInt32 {
        UInt32(truncatingIfNeeded: status.st_ino) & 0xFFFF | (UInt32(truncatingIfNeeded: status.st_dev) & 0xFF) << 16
    }

    /// glibc's `ftok` from a file's status.
    static func ftok(_ status: stat, projectID: Int32) -> Int32 {
        Int32(bitPattern: ftokIdentity(status) | (UInt32(truncatingIfNeeded: projectID) & 0xFF) << 24)
    }
}

private struct Scanner {
    let allUsers: Bool
    let tempDirectory: String
    let me = geteuid()
    var warnings: [String] = []
    var objects: [IPCObject] = []
    var journals: [RunJournal] = []
    /// Qt name -> (legacy key, journal token), from the journals' segment records.
    var recovered: [String: (String, String)] = [:]
    /// Paths named by journals -> token.
    var journalPaths: [String: String] = [:]
    /// System V key files named by journals (not necessarily in the temp dir).
    var journalKeyFiles: Set<String> = []

    init(allUsers: Bool, tempDirectory: String) {
        self.allUsers = allUsers
        self.tempDirectory = tempDirectory
    }

    func mine(_ uid: UInt32, _ cuid: UInt32? = nil) -> Bool { allUsers || uid == me || cuid == me }

    mutating func run() -> Inventory {
        readJournals()
        let usage = ProcessUsage.scan()
        if usage.unreadable > 0 && me != 0 {
            warnings.append(
                "\(usage.unreadable) processes of other users could not be inspected: their mappings and open files are not seen")
        }

        // Key files: the temp dir's qipc_* and the journals' System V key files.
        var keyFilePaths = Set(
            HousekeepingIO.directoryEntries(tempDirectory).filter { $0.hasPrefix("qipc_") }.map { tempDirectory + "/" + $0 })
        keyFilePaths.formUnion(journalKeyFiles)
        var keyFiles: [(path: String, status: stat)] = []
        for path in keyFilePaths.sorted() {
            guard case .success(let status) = HousekeepingIO.lstatus(path) else { continue }
            keyFiles.append((path, status))
        }
        let segmentRows = SysVTables.segments()
        let semaphoreRows = SysVTables.semaphoreSets()
        func keyFile(for key: Int32) -> String? {
            guard key != 0 else { return nil }
            let identity = UInt32(bitPattern: key) & 0xFFFFFF
            return keyFiles.first { ($0.status.st_mode & S_IFMT) == S_IFREG && SysVTables.ftokIdentity($0.status) == identity }?.path
        }

        var segmentsByKeyFile: [String: [IPCObject]] = [:]
        for row in segmentRows where mine(row.uid, row.cuid) {
            var object = IPCObject(
                kind: .systemVSegment, id: row.id, ipcKey: row.key, ownerUID: row.uid, creatorUID: row.cuid,
                mode: row.mode & 0o777, size: row.size, attached: row.nattch, creatorPID: row.cpid, lastPID: row.lpid,
                maker: .unknown, reason: "")
            object.creatorAlive = row.cpid > 0 ? ProcessTable.isAlive(row.cpid, startedBy: row.ctime) : false
            object.lastAlive = row.lpid > 0 ? ProcessTable.isAlive(row.lpid) : false
            attachKeyFile(&object, keyFile(for: row.key))
            objects.append(object)
        }
        for row in semaphoreRows where mine(row.uid, row.cuid) {
            var object = IPCObject(
                kind: .systemVSemaphoreSet, id: row.id, ipcKey: row.key, ownerUID: row.uid, creatorUID: row.cuid,
                mode: row.mode & 0o777, semaphores: row.nsems, maker: .unknown, reason: "")
            let lastPID = valueOrErrno { shm_shim_semctl_getpid(row.id, 0) }
            if case .success(let pid) = lastPID {
                object.lastPID = pid
                object.lastAlive = pid > 0 && ProcessTable.isAlive(pid)
            }
            if case .success(let n) = valueOrErrno({ shm_shim_semctl_getncnt(row.id, 0) }) { object.waiting = Int(n) }
            attachKeyFile(&object, keyFile(for: row.key))
            if row.nsems == Int(SystemVSemaphore.managedSetSize) { object.maker = .library }
            if let file = object.keyFile, case .success(let status) = HousekeepingIO.lstatus(file) {
                object.usageRecords = usage.records(on: FileIdentity(status))
            }
            objects.append(object)
        }
        // A segment whose lock set is the library's is the library's too.
        for index in objects.indices where objects[index].kind == .systemVSegment {
            if let lock = lockSet(of: objects[index]), lock.maker == .library { objects[index].maker = .library }
        }
        for index in objects.indices where objects[index].kind == .systemVSegment {
            var object = objects[index]
            judgeSegment(&object)
            objects[index] = object
        }
        for index in objects.indices where objects[index].kind == .systemVSemaphoreSet {
            var object = objects[index]
            judgeSemaphoreSet(&object)
            objects[index] = object
        }
        for object in objects where object.keyFile != nil {
            segmentsByKeyFile[object.keyFile!, default: []].append(object)
        }

        // Key files.
        let now = Int64(time(nil))
        for (path, status) in keyFiles where mine(status.st_uid) {
            let name = String(path.split(separator: "/").last ?? "")
            var object = IPCObject(
                kind: .keyFile, path: path, ownerUID: status.st_uid, mode: UInt32(status.st_mode & 0o7777),
                size: UInt64(status.st_size), maker: .qt, reason: "")
            if !name.hasPrefix("qipc_") { object.maker = .run }
            if status.st_mode & S_ISVTX != 0 && (status.st_mode & S_IFMT) == S_IFREG { object.maker = .library }
            object.runToken = journalPaths[path]
            nameQt(&object, name)
            let anchored = segmentsByKeyFile[path] ?? []
            object.anchors = anchored.map { "\($0.kind.rawValue) \($0.id ?? -1)" }
            guard (status.st_mode & S_IFMT) == S_IFREG else {
                object.stale = nil
                object.reason = "not a regular file; never touched"
                objects.append(object)
                continue
            }
            let identity = FileIdentity(status)
            object.usageRecords = usage.records(on: identity)
            if object.usageRecords! > 0 {
                object.stale = false
                object.reason = "\(object.usageRecords!) usage records held"
            } else if let live = anchored.first(where: { $0.stale != true }) {
                object.stale = false
                object.reason = "anchors \(live.label), which is not stale"
            } else if !anchored.isEmpty {
                object.stale = true
                object.reason = "every object it anchors is stale"
            } else if now - Int64(status.st_ctim.tv_sec) < Inventory.orphanKeyFileGrace {
                object.stale = false
                object.reason = "anchors no object, but was made less than \(Inventory.orphanKeyFileGrace) s ago"
            } else {
                object.stale = true
                object.reason = "anchors no System V object"
            }
            objects.append(object)
        }

        // /dev/shm: POSIX segments and semaphores.
        for entry in HousekeepingIO.directoryEntries("/dev/shm").sorted() {
            let path = "/dev/shm/" + entry
            guard case .success(let status) = HousekeepingIO.lstatus(path), mine(status.st_uid) else { continue }
            let isSemaphore = entry.hasPrefix("sem.")
            let bare = isSemaphore ? String(entry.dropFirst(4)) : entry
            var object = IPCObject(
                kind: isSemaphore ? .posixSemaphore : .posixSegment, path: path, ownerUID: status.st_uid,
                mode: UInt32(status.st_mode & 0o7777), size: UInt64(status.st_size), maker: .unknown, reason: "")
            object.runToken = journalPaths[path]
            nameQt(&object, bare)
            if object.qtName != nil { object.maker = .qt }
            if status.st_mode & S_ISVTX != 0 && (status.st_mode & S_IFMT) == S_IFREG { object.maker = .library }
            if object.maker == .unknown && object.runToken != nil { object.maker = .run }
            let identity = FileIdentity(status)
            object.attached = usage.mappers(of: identity).count
            object.openBy = usage.openers(of: identity).count
            object.usageRecords = usage.records(on: identity)
            if (status.st_mode & S_IFMT) != S_IFREG {
                object.reason = "not a regular file; never touched"
            } else if object.maker == .unknown {
                object.reason = "not Qt-style, not made by this library, not named by a run journal"
            } else if object.usageRecords! > 0 {
                object.stale = false
                object.reason = "\(object.usageRecords!) usage records held"
            } else if object.attached! > 0 {
                object.stale = false
                object.reason = "mapped by \(object.attached!) processes"
            } else if object.openBy! > 0 {
                object.stale = false
                object.reason = "open in \(object.openBy!) processes"
            } else {
                object.stale = true
                object.reason = "not mapped or open by any process, no usage record"
            }
            objects.append(object)
        }

        // Files the journals name.
        for journal in journals {
            for path in journal.files.flatMap({ [$0, $0 + ".lock"] }) + journal.lockFiles {
                guard case .success(let status) = HousekeepingIO.lstatus(path), mine(status.st_uid) else { continue }
                if objects.contains(where: { $0.path == path }) { continue }
                var object = IPCObject(
                    kind: .runFile, path: path, ownerUID: status.st_uid, mode: UInt32(status.st_mode & 0o7777),
                    size: UInt64(status.st_size), maker: .run, runToken: journal.token, reason: "")
                let identity = FileIdentity(status)
                object.attached = usage.mappers(of: identity).count
                object.openBy = usage.openers(of: identity).count
                let locked = usage.isLocked(identity)
                if (status.st_mode & S_IFMT) != S_IFREG {
                    object.reason = "not a regular file; never touched"
                } else if case .running = journal.state() {
                    object.stale = false
                    object.reason = "its run is still going"
                } else if object.attached! > 0 || object.openBy! > 0 || locked {
                    object.stale = false
                    object.reason = locked ? "locked by a process" : "mapped or open by a process"
                } else {
                    object.stale = true
                    object.reason = "its run is gone; not mapped, open or locked"
                }
                objects.append(object)
            }
        }
        return Inventory(objects: objects, journals: journals, warnings: warnings, allUsers: allUsers)
    }

    mutating func readJournals() {
        var directories: [String] = []
        do throws(SharedMemoryError) {
            if let own = try JournalDirectory.existingRunsDirectory() { directories.append(own) }
        } catch {
            warnings.append("run journals not read: \(error)")
        }
        if allUsers { directories += JournalDirectory.otherUsersRunsDirectories() }
        for directory in directories {
            let (found, problems) = JournalDirectory.journals(in: directory, allowForeignOwner: allUsers)
            journals += found
            warnings += problems.map { "journal not read: \($0)" }
        }
        for journal in journals {
            for key in journal.segmentKeys {
                for k in [key, key.lockSemaphoreKey()] {
                    let bare = String(k.nativeKey.split(separator: "/").last ?? "")
                    if let legacy = key.legacyKey {
                        for kind in IPCObjectKind.allCases {
                            recovered[NativeIPCKey.legacyName(legacy, kind: kind)] = (legacy, journal.token)
                        }
                    }
                    if k.type.isSystemV {
                        journalKeyFiles.insert(k.nativeKey)
                        journalPaths[k.nativeKey] = journal.token
                    } else {
                        journalPaths["/dev/shm/" + bare] = journal.token
                        journalPaths["/dev/shm/sem." + bare] = journal.token
                    }
                }
            }
            for path in journal.files + journal.lockFiles { journalPaths[path] = journal.token }
        }
    }

    /// Fills the Qt name, letters and recovered legacy key from an object's name.
    func nameQt(_ object: inout IPCObject, _ name: String) {
        guard let qt = QtLegacyName(name) else { return }
        object.qtName = name
        object.qtKind = qt.kind
        object.keyLetters = qt.letters
        if let (key, token) = recovered[name] {
            object.legacyKey = key
            object.legacyKeySource = "journal \(token)"
        } else if let key = qt.keyIfLettersOnly {
            object.legacyKey = key
            object.legacyKeySource = "letters"
        }
    }

    func attachKeyFile(_ object: inout IPCObject, _ path: String?) {
        guard let path, let key = object.ipcKey else { return }
        object.keyFile = path
        object.projectID = Int(UInt32(bitPattern: key) >> 24)
        object.runToken = journalPaths[path]
        let name = String(path.split(separator: "/").last ?? "")
        nameQt(&object, name)
        object.maker = object.qtName != nil ? .qt : (object.runToken != nil ? .run : .unknown)
    }

    /// The semaphore set a segment locks through: for a Qt legacy name, the `qipc_systemsem_` file beside its
    /// key file; otherwise the same key file (same `ftok` key, semaphore namespace).
    func lockSet(of segment: IPCObject) -> IPCObject? {
        guard let keyFile = segment.keyFile else { return nil }
        if let qt = segment.qtName.flatMap(QtLegacyName.init), qt.kind == .sharedMemory {
            let directory = keyFile.split(separator: "/").dropLast().joined(separator: "/")
            let lockFile = "/" + directory + "/" + IPCObjectKind.systemSemaphore.prefix + qt.letters + qt.sha1
            return objects.first { $0.kind == .systemVSemaphoreSet && $0.keyFile == lockFile }
        }
        return objects.first { $0.kind == .systemVSemaphoreSet && $0.ipcKey == segment.ipcKey }
    }

    func judged(_ object: IPCObject) -> Bool { object.maker != .unknown }

    func judgeSegment(_ object: inout IPCObject) {
        guard judged(object) else {
            object.reason = "not tied to a Qt key file, this library or a run journal"
            return
        }
        if object.attached! > 0 {
            object.stale = false
            object.reason = "\(object.attached!) processes attached"
        } else if object.creatorAlive == true {
            object.stale = false
            object.reason = "nobody attached, but its creator (pid \(object.creatorPID!)) is alive"
        } else {
            object.stale = true
            object.reason = "nobody attached and its creator (pid \(object.creatorPID ?? 0)) is gone"
        }
    }

    func judgeSemaphoreSet(_ object: inout IPCObject) {
        guard judged(object) else {
            object.reason = "not tied to a Qt key file, this library or a run journal"
            return
        }
        let pairedSegment = objects.first { $0.kind == .systemVSegment && lockSet(of: $0)?.id == object.id }
        if let records = object.usageRecords, records > 0 {
            object.stale = false
            object.reason = "\(records) usage records held"
        } else if let waiting = object.waiting, waiting > 0 {
            object.stale = false
            object.reason = "\(waiting) processes waiting on it"
        } else if object.lastAlive == true {
            object.stale = false
            object.reason = "the last process to use it (pid \(object.lastPID!)) is alive"
        } else if let pairedSegment, pairedSegment.stale != true {
            object.stale = false
            object.reason = "the lock of \(pairedSegment.label), which is not stale"
        } else if object.lastPID == nil {
            object.reason = "cannot read it (semctl refused)"
        } else {
            object.stale = true
            object.reason = "no usage record, nobody waiting, the last process to use it (pid \(object.lastPID!)) is gone"
        }
    }
}
