import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// What `shm-harness clean` did with one object.
public struct CleanEvent: Sendable, CustomStringConvertible {
    public enum Outcome: Sendable {
        case removed
        case wouldRemove
        /// Left alone on purpose: in use, another user's, not a regular file, ...
        case kept(String)
        case failed(SharedMemoryError)
    }

    /// The object: `System V segment 32769 (key 0x51012345, /tmp/qipc_…)`, `POSIX segment /dev/shm/…`, ...
    public var object: String
    public var outcome: Outcome

    public var description: String {
        switch outcome {
        case .removed: "removed \(object)"
        case .wouldRemove: "would remove \(object)"
        case .kept(let reason): "kept \(object): \(reason)"
        case .failed(let error): "failed to remove \(object): \(error)"
        }
    }

    public var isRemoval: Bool {
        switch outcome {
        case .removed, .wouldRemove: true
        default: false
        }
    }
}

/// Removes shared-memory objects for `shm-harness clean`: only the caller's own (or any user's, as root, when
/// asked), never one in use, never through a symlink. Every decision is made again on the object as it is at
/// removal time, under the same claims the library's own removals take:
///
/// - a System V segment: `shm_nattch` is 0, checked again while holding its lock semaphore (Qt and this
///   library attach under that lock), then `IPC_RMID`;
/// - a System V semaphore set: no usage record on its key file slot (claimed exclusively), nobody waiting,
///   and the last process to operate on it is gone; then `IPC_RMID`;
/// - a /dev/shm object or a run file: claimed with an exclusive lock over the whole file (fails while any
///   usage record or lock is held), not mapped or open by any process, still the same file at its path;
///   then `unlink`;
/// - a key file: it anchors no System V object any more (any `ftok` project id) and no usage record is held.
public final class Reaper {
    public let dryRun: Bool
    public let anyOwner: Bool
    public private(set) var events: [CleanEvent] = []
    private let report: (CleanEvent) -> Void
    private let me = geteuid()
    private var handled: Set<String> = []

    /// - Parameters:
    ///   - anyOwner: also remove other users' objects; only root may ask.
    ///   - report: called with each event as it happens.
    /// - Throws: `permissionDenied` when `anyOwner` is asked for by a process that is not root.
    public init(dryRun: Bool = false, anyOwner: Bool = false, report: @escaping (CleanEvent) -> Void = { _ in })
        throws(SharedMemoryError)
    {
        if anyOwner && geteuid() != 0 {
            throw SharedMemoryError(
                .permissionDenied, operation: "clean", detail: "removing other users' objects needs root (euid \(geteuid()))")
        }
        self.dryRun = dryRun
        self.anyOwner = anyOwner
        self.report = report
    }

    private func emit(_ object: String, _ outcome: CleanEvent.Outcome) -> CleanEvent.Outcome {
        let event = CleanEvent(object: object, outcome: outcome)
        events.append(event)
        report(event)
        return outcome
    }

    private func ownerRefusal(_ uid: UInt32, creator: UInt32? = nil) -> String? {
        if anyOwner { return nil }
        if uid != me { return "owned by uid \(uid), not by this user (uid \(me))" }
        // A System V object given to this user with IPC_SET still belongs to the user who made it.
        if let creator, creator != me { return "created by uid \(creator), not by this user (uid \(me))" }
        return nil
    }

    private var site: CallSite { CallSite(operation: "clean", object: nil) }

    // MARK: requests

    /// Removes a segment's objects named by its key: the segment, its lock semaphore and their key files, each
    /// when unused. Returns false when nothing of the key exists.
    /// - Parameter allowAnyPath: accept a System V key whose file is outside the temp and runtime folders
    ///   (``KeyPathPolicy``); without it such a key is kept with the reason, and nothing of it is touched.
    @discardableResult
    public func clean(key: NativeIPCKey, allowAnyPath: Bool = false) -> Bool {
        let before = events.count
        if !allowAnyPath, let refusal = KeyPathPolicy.refusal(key) {
            _ = emit("key \(key)", .kept(refusal))
            return true
        }
        cleanFamily(key)
        return events.count > before
    }

    /// Removes what the journal of run `token` names, then the journal (when nothing it names is left).
    /// - Throws: `notFound` when there is no such journal; `busy` when that run is still going.
    public func clean(run token: String) throws(SharedMemoryError) {
        guard RunJournal.isValidToken(token) else {
            throw SharedMemoryError(.keyError, operation: "clean", detail: "'\(token)' is not a run token")
        }
        guard let directory = try JournalDirectory.existingRunsDirectory() else {
            throw SharedMemoryError(
                .notFound, operation: "clean", object: JournalDirectory.path(forToken: token),
                detail: "no journal for run \(token)")
        }
        let journal = try RunJournal.read(at: directory + "/" + token + RunJournal.fileExtension)
        if case .running = journal.state() {
            throw SharedMemoryError(
                .busy, operation: "clean", object: journal.path,
                detail: "run \(token) is still going (runner pid \(journal.runnerPID ?? 0))")
        }
        cleanJournal(journal)
    }

    /// Removes the objects of this user's stale (or ended) run journals, then those journals: what a `run`
    /// does before it starts. Journals of runs still going are left alone.
    /// - Parameter matching: only journals whose token or named objects contain this text (nil: all).
    public func cleanStaleJournals(matching: String? = nil) {
        var journals: [RunJournal] = []
        do throws(SharedMemoryError) {
            if let directory = try JournalDirectory.existingRunsDirectory() {
                let (found, problems) = JournalDirectory.journals(in: directory)
                journals = found
                for problem in problems { _ = emit(problem.object ?? "a journal", .failed(problem)) }
            }
        } catch {
            _ = emit("the run journals", .failed(error))
        }
        for journal in journals {
            if let matching, !([journal.token] + journal.segments + journal.files + journal.lockFiles).contains(where: { $0.contains(matching) }) {
                continue
            }
            switch journal.state() {
            case .running: continue
            case .ended, .stale: cleanJournal(journal)
            }
        }
    }

    /// ``cleanStaleJournals(matching:)``, then every Qt-style or library object that looks stale (see
    /// ``Inventory``): `clean --stale`.
    /// - Parameter matching: only journals whose token or named objects contain this text, and only objects
    ///   whose path, key file, Qt name or legacy key contains it (nil: all).
    public func cleanStale(matching: String? = nil) {
        func matches(_ texts: [String?]) -> Bool {
            guard let matching else { return true }
            return texts.contains { $0?.contains(matching) == true }
        }
        cleanStaleJournals(matching: matching)

        var inventory = Inventory.scan(allUsers: anyOwner)
        inventory.objects = inventory.objects.filter { matches([$0.path, $0.keyFile, $0.qtName, $0.legacyKey]) }
        for object in inventory.objects where object.stale == true && object.kind == .systemVSegment {
            cleanSystemVSegment(object)
        }
        for object in inventory.objects where object.stale == true && object.kind == .posixSegment {
            cleanPOSIXSegment(path: object.path!, lockPath: posixLockPath(of: object))
        }
        for object in inventory.objects where object.stale == true && object.kind == .systemVSemaphoreSet {
            guard !handled.contains("sem \(object.ipcKey!)") else { continue }
            let outcome = removeSemaphoreSet(
                key: object.ipcKey!, keyFile: object.keyFile, projectID: Int32(object.projectID ?? 0))
            if let keyFile = object.keyFile, outcome.map(Self.isGone) ?? true { _ = removeKeyFile(keyFile, fresh: false) }
        }
        for object in inventory.objects where object.stale == true && object.kind == .posixSemaphore {
            _ = removeFile(object.path!, kind: .posixSemaphore)
        }
        for object in inventory.objects where object.stale == true && object.kind == .keyFile {
            _ = removeKeyFile(object.path!, fresh: true)
        }
    }

    // MARK: journals

    private func cleanJournal(_ journal: RunJournal) {
        let label = "run journal \(journal.path)"
        // Cleaners of one journal take turns (two runs starting at once, a run and `clean --stale`): side by
        // side, each finds the other's claims on the objects ("a lock is held", "open in a process"), counts
        // them as left, and both keep the journal although everything it names ends up gone.
        var claim: FileDescriptor?
        switch claimJournal(journal.path) {
        case .gone: return  // another cleaner removed it (and everything it named) meanwhile
        case .busy: _ = emit(label, .kept("another clean has been working on it for \(Self.journalClaimTimeout) s")); return
        case .claimed(let fd): claim = fd
        case .unclaimable: break  // cannot be locked (read-only): cleaned as before
        }
        defer { try? claim?.close() }
        var left = 0
        for text in journal.segments {
            guard let key = NativeIPCKey(string: text) else { continue }
            if !cleanFamily(key) { left += 1 }
        }
        for path in journal.files.flatMap({ [$0, $0 + ".lock"] }) + journal.lockFiles {
            if let outcome = removeFile(path, kind: .runFile), !Self.isGone(outcome) { left += 1 }
        }
        for path in journal.workDirectories where !removeWorkDirectory(path) { left += 1 }
        if left > 0 {
            _ = emit(label, .kept("\(left) of the objects it names are still there"))
            return
        }
        if dryRun {
            _ = emit(label, .wouldRemove)
            return
        }
        // The journal is this user's file in this user's 0700 folder; unlink does not follow a symlink.
        switch valueOrErrno({ unlink(journal.path) }) {
        case .success, .failure(.noSuchFileOrDirectory): _ = emit(label, .removed)
        case .failure(let err): _ = emit(label, .failed(site.error("unlink", err, detail: journal.path)))
        }
    }

    /// How long a cleaner waits for another one to finish with a journal (seconds).
    static let journalClaimTimeout = 30

    private enum JournalClaim { case claimed(FileDescriptor), gone, busy, unclaimable }

    /// Takes an exclusive lock over the whole journal file (waiting up to ``journalClaimTimeout`` while another
    /// cleaner holds it), then checks that the path still names that file: a cleaner that finished before us
    /// unlinked it (`.gone`).
    private func claimJournal(_ path: String) -> JournalClaim {
        let raw: CInt
        switch valueOrErrno({ shm_shim_open(path, SHM_SHIM_O_RDWR | SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC, 0) }) {
        case .success(let value): raw = value
        case .failure(.noSuchFileOrDirectory): return .gone
        case .failure: return .unclaimable
        }
        let fd = FileDescriptor(rawValue: raw)
        let deadline = Int64(time(nil)) + Int64(Self.journalClaimTimeout)
        var locked = valueOrErrno({ shm_shim_ofd_lock(raw, 1, 0, 0, 0) })
        while case .failure(let err) = locked, err == .resourceTemporarilyUnavailable || err == .permissionDenied,
            Int64(time(nil)) < deadline
        {
            usleep(10_000)
            locked = valueOrErrno({ shm_shim_ofd_lock(raw, 1, 0, 0, 0) })
        }
        if case .failure(let err) = locked {
            try? fd.close()
            return err == .resourceTemporarilyUnavailable || err == .permissionDenied ? .busy : .unclaimable
        }
        var mine = stat()
        guard fstat(raw, &mine) == 0, case .success(let current) = HousekeepingIO.lstatus(path),
            current.st_ino == mine.st_ino && current.st_dev == mine.st_dev
        else {
            try? fd.close()
            return .gone
        }
        return .claimed(fd)
    }

    /// A run's private folder: only a real directory (not a symlink) of this user named `shm-harness-run-*`,
    /// removed with its contents (which never follows symlinks inside it). True when it is gone.
    private func removeWorkDirectory(_ path: String) -> Bool {
        guard let status = try? FilePath(path).stat(followTargetSymlink: false) else { return true }
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        guard status.type == .directory, name.hasPrefix("shm-harness-run-") else {
            _ = emit(path, .kept("not a run folder (a directory named shm-harness-run-*)"))
            return false
        }
        if let refusal = ownerRefusal(status.userID.rawValue) {
            _ = emit(path, .kept(refusal))
            return false
        }
        if dryRun {
            _ = emit("run folder \(path)", .wouldRemove)
            return true
        }
        if let failure = HousekeepingIO.removeTree(path) {
            _ = emit("run folder \(path)", .kept(failure))
            return false
        }
        _ = emit("run folder \(path)", .removed)
        return true
    }

    // MARK: families

    /// A segment's objects by key. Returns true when nothing of it is left (or would be, in a dry run).
    @discardableResult
    private func cleanFamily(_ key: NativeIPCKey) -> Bool {
        let lockKey = key.lockSemaphoreKey()
        if key.type.isSystemV {
            let segmentKey = Self.ftokKey(key.nativeKey, projectID: key.type.projectID!)
            let lockIPC = lockKey.type.projectID.flatMap { Self.ftokKey(lockKey.nativeKey, projectID: $0) }
            var left = false
            if let segmentKey {
                if let outcome = removeSegment(key: segmentKey, keyFile: key.nativeKey, lockSetKey: lockIPC, requireDeadCreator: false) {
                    left = left || !Self.isGone(outcome)
                }
            }
            if !left, let lockIPC {
                if let outcome = removeSemaphoreSet(key: lockIPC, keyFile: lockKey.nativeKey, projectID: lockKey.type.projectID!) {
                    left = left || !Self.isGone(outcome)
                }
            }
            if !left {
                for file in Set([key.nativeKey, lockKey.nativeKey]).sorted() {
                    if let outcome = removeKeyFile(file, fresh: false) { left = left || !Self.isGone(outcome) }
                }
            }
            return !left
        }
        if key.type == .posixRealtime {
            let bare = key.nativeKey.drop(while: { $0 == "/" })
            guard !bare.isEmpty, !bare.contains("/") else {
                _ = emit("POSIX key \(key.nativeKey)", .kept("not a POSIX object name (one path component)"))
                return false
            }
            return cleanPOSIXSegment(path: "/dev/shm/" + bare, lockPath: POSIXSemaphore.filePath(for: lockKey.nativeKey))
        }
        _ = emit("key \(key)", .kept("not a System V or POSIX key"))
        return false
    }

    @discardableResult
    private func cleanPOSIXSegment(path: String, lockPath: String?) -> Bool {
        if let outcome = removeFile(path, kind: .posixSegment), !Self.isGone(outcome) { return false }
        if let lockPath, let outcome = removeFile(lockPath, kind: .posixSemaphore), !Self.isGone(outcome) { return false }
        return true
    }

    /// A stale System V segment from the inventory, with its lock semaphore and key files.
    private func cleanSystemVSegment(_ object: IPCObject) {
        guard let key = object.ipcKey, let keyFile = object.keyFile else { return }
        let projectID = Int32(object.projectID ?? 0x51)
        var lockFile = keyFile
        if let qt = object.qtName.flatMap(QtLegacyName.init), qt.kind == .sharedMemory {
            lockFile = keyFile.split(separator: "/").dropLast().map { "/" + $0 }.joined()
                + "/" + IPCObjectKind.systemSemaphore.prefix + qt.letters + qt.sha1
        }
        let lockIPC = Self.ftokKey(lockFile, projectID: projectID)
        if let outcome = removeSegment(key: key, keyFile: keyFile, lockSetKey: lockIPC, requireDeadCreator: true),
            !Self.isGone(outcome)
        {
            return
        }
        if let lockIPC, let outcome = removeSemaphoreSet(key: lockIPC, keyFile: lockFile, projectID: projectID),
            !Self.isGone(outcome)
        {
            return
        }
        for file in Set([keyFile, lockFile]).sorted() { _ = removeKeyFile(file, fresh: false) }
    }

    private func posixLockPath(of object: IPCObject) -> String? {
        guard let path = object.path else { return nil }
        let name = String(path.dropFirst("/dev/shm/".count))
        if let qt = QtLegacyName(name), qt.kind == .sharedMemory {
            return "/dev/shm/sem." + IPCObjectKind.systemSemaphore.prefix + qt.letters + qt.sha1
        }
        // A native key: the lock semaphore has the same name.
        return object.maker == .library ? "/dev/shm/sem." + name : nil
    }

    private static func isGone(_ outcome: CleanEvent.Outcome) -> Bool {
        switch outcome {
        case .removed, .wouldRemove: true
        case .kept, .failed: false
        }
    }

    /// glibc's `ftok` of a regular file (never through a symlink); nil when there is none.
    static func ftokKey(_ path: String, projectID: Int32) -> Int32? {
        guard case .success(let status) = HousekeepingIO.lstatus(path), (status.st_mode & S_IFMT) == S_IFREG else {
            return nil
        }
        return SysVTables.ftok(status, projectID: projectID)
    }

    // MARK: System V

    /// Removes a System V segment by key; nil when there is none.
    private func removeSegment(key: Int32, keyFile: String?, lockSetKey: Int32?, requireDeadCreator: Bool)
        -> CleanEvent.Outcome?
    {
        guard key != 0, !handled.contains("shm \(key)"),
            let row = SysVTables.segments().first(where: { $0.key == key })
        else { return nil }
        handled.insert("shm \(key)")
        var label = "System V segment \(row.id) (key \(IPCKeyText.hex(key))"
        if let keyFile { label += ", \(keyFile)" }
        label += ")"
        if let refusal = ownerRefusal(row.uid, creator: row.cuid) { return emit(label, .kept(refusal)) }
        if row.nattch > 0 { return emit(label, .kept("\(row.nattch) processes attached")) }
        if requireDeadCreator, row.cpid > 0, ProcessTable.isAlive(row.cpid, startedBy: row.ctime) {
            return emit(label, .kept("its creator (pid \(row.cpid)) is alive"))
        }
        if dryRun { return emit(label, .wouldRemove) }
        // Hold the segment's lock while removing: Qt and this library attach under it.
        var lockedSet: Int32?
        if let lockSetKey, let set = SysVTables.semaphoreSets().first(where: { $0.key == lockSetKey }) {
            let flags = SHM_SHIM_SEM_UNDO | SHM_SHIM_IPC_NOWAIT
            switch valueOrErrno({ shm_shim_semop(set.id, 0, -1, flags, -1) }) {
            case .success: lockedSet = set.id
            case .failure(.resourceTemporarilyUnavailable):
                return emit(label, .kept("its lock (System V semaphore set \(set.id)) is held by a process"))
            case .failure: break  // unusable lock (removed meanwhile, no permission): the checks below still hold
            }
        }
        defer {
            if let lockedSet { _ = shm_shim_semop(lockedSet, 0, 1, SHM_SHIM_SEM_UNDO, -1) }
        }
        var attached: UInt = 0
        var uid: uid_t = 0
        switch valueOrErrno({ shm_shim_shmctl_stat(row.id, nil, &attached, &uid, nil, nil, nil, nil) }) {
        case .success: break
        case .failure(.invalidArgument), .failure(.identifierRemoved): return nil
        case .failure(let err): return emit(label, .failed(site.error("shmctl(IPC_STAT)", err, detail: label)))
        }
        if let refusal = ownerRefusal(uid) { return emit(label, .kept(refusal)) }
        if attached > 0 { return emit(label, .kept("\(attached) processes attached")) }
        switch valueOrErrno({ shm_shim_shmctl_rmid(row.id) }) {
        case .success: return emit(label, .removed)
        case .failure(.invalidArgument), .failure(.identifierRemoved): return nil
        case .failure(let err): return emit(label, .failed(site.error("shmctl(IPC_RMID)", err, detail: label)))
        }
    }

    /// Removes a System V semaphore set by key; nil when there is none.
    private func removeSemaphoreSet(key: Int32, keyFile: String?, projectID: Int32) -> CleanEvent.Outcome? {
        guard key != 0, !handled.contains("sem \(key)"),
            let row = SysVTables.semaphoreSets().first(where: { $0.key == key })
        else { return nil }
        handled.insert("sem \(key)")
        var label = "System V semaphore set \(row.id) (key \(IPCKeyText.hex(key))"
        if let keyFile { label += ", \(keyFile)" }
        label += ")"
        if let refusal = ownerRefusal(row.uid, creator: row.cuid) { return emit(label, .kept(refusal)) }
        // The key file's usage record slot: claimed exclusively, so no library user can start using it.
        var claim: ObjectFile?
        if let keyFile {
            do throws(SharedMemoryError) {
                let file = try ObjectFile.openExisting(keyFile, allowForeignOwner: anyOwner, site: site)
                if file.ftokKey(projectID: projectID) == key { claim = file }
            } catch where error.code == .notFound {
                claim = nil
            } catch {
                return emit(label, .kept("its key file cannot be checked: \(error)"))
            }
            if let claim, !claim.claimForRemoval(slot: projectID) {
                return emit(label, .kept("a process using this library has it open (usage record on \(keyFile))"))
            }
        }
        if case .success(let waiting) = valueOrErrno({ shm_shim_semctl_getncnt(row.id, 0) }), waiting > 0 {
            return emit(label, .kept("\(waiting) processes are waiting on it"))
        }
        if case .success(let last) = valueOrErrno({ shm_shim_semctl_getpid(row.id, 0) }), last > 0, last != getpid(),
            ProcessTable.isAlive(last)
        {
            return emit(label, .kept("the last process to use it (pid \(last)) is alive"))
        }
        if dryRun { return emit(label, .wouldRemove) }
        defer { withExtendedLifetime(claim) {} }
        switch valueOrErrno({ shm_shim_semctl_rmid(row.id) }) {
        case .success: return emit(label, .removed)
        case .failure(.invalidArgument), .failure(.identifierRemoved): return nil
        case .failure(let err): return emit(label, .failed(site.error("semctl(IPC_RMID)", err, detail: label)))
        }
    }

    /// Removes a key file that anchors no System V object any more; nil when there is none.
    /// - Parameter fresh: also keep it while it is younger than ``Inventory/orphanKeyFileGrace``.
    private func removeKeyFile(_ path: String, fresh: Bool) -> CleanEvent.Outcome? {
        guard !handled.contains("file \(path)") else { return nil }
        let label = "key file \(path)"
        let status: stat
        switch HousekeepingIO.lstatus(path) {
        case .success(let value): status = value
        // A name longer than NAME_MAX (a journal of a run that failed to make it) names nothing.
        case .failure(.noSuchFileOrDirectory), .failure(.fileNameTooLong): return nil
        case .failure(let err): return emit(label, .failed(site.error("lstat", err, detail: path)))
        }
        handled.insert("file \(path)")
        if (status.st_mode & S_IFMT) == S_IFLNK { return emit(label, .kept("a symbolic link; never followed")) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return emit(label, .kept("not a regular file")) }
        if let refusal = ownerRefusal(status.st_uid) { return emit(label, .kept(refusal)) }
        // A key file is empty (Qt's createUnixKeyFile and this library create it so, and nothing writes to
        // it). A file with data that a native key happens to name is nobody's key file.
        if status.st_size != 0 {
            return emit(label, .kept("not a key file (\(status.st_size) bytes of data; key files are empty); never removed"))
        }
        let identity = SysVTables.ftokIdentity(status)
        let anchored =
            SysVTables.segments().filter { $0.key != 0 && UInt32(bitPattern: $0.key) & 0xFFFFFF == identity }
            .map { "System V segment \($0.id)" }
            + SysVTables.semaphoreSets().filter { $0.key != 0 && UInt32(bitPattern: $0.key) & 0xFFFFFF == identity }
            .map { "System V semaphore set \($0.id)" }
        if let first = anchored.first {
            if dryRun && handledAll(anchored) { return emit(label, .wouldRemove) }
            return emit(label, .kept("it still anchors \(first)"))
        }
        if fresh && Int64(time(nil)) - Int64(status.st_ctim.tv_sec) < Inventory.orphanKeyFileGrace {
            return emit(label, .kept("made less than \(Inventory.orphanKeyFileGrace) s ago"))
        }
        return unlinkClaimed(path, label: label, checkProcesses: false)
    }

    /// In a dry run nothing is removed, so a key file still anchors objects that would be removed.
    private func handledAll(_ anchored: [String]) -> Bool {
        anchored.allSatisfy { a in events.contains { $0.isRemoval && $0.object.hasPrefix(a + " ") } }
    }

    // MARK: files

    enum FileKind { case posixSegment, posixSemaphore, runFile }

    /// Removes a /dev/shm object or a run file; nil when there is none.
    private func removeFile(_ path: String, kind: FileKind) -> CleanEvent.Outcome? {
        guard !handled.contains("file \(path)") else { return nil }
        let label: String
        switch kind {
        case .posixSegment: label = "POSIX segment \(path)"
        case .posixSemaphore: label = "POSIX semaphore \(path)"
        case .runFile: label = "run file \(path)"
        }
        let status: stat
        switch HousekeepingIO.lstatus(path) {
        case .success(let value): status = value
        // A name longer than NAME_MAX (a journal of a run that failed to make it) names nothing.
        case .failure(.noSuchFileOrDirectory), .failure(.fileNameTooLong): return nil
        case .failure(let err): return emit(label, .failed(site.error("lstat", err, detail: path)))
        }
        handled.insert("file \(path)")
        if (status.st_mode & S_IFMT) == S_IFLNK { return emit(label, .kept("a symbolic link; never followed")) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return emit(label, .kept("not a regular file")) }
        if let refusal = ownerRefusal(status.st_uid) { return emit(label, .kept(refusal)) }
        return unlinkClaimed(path, label: label, checkProcesses: true)
    }

    /// Opens `path` without following symlinks, takes an exclusive lock over the whole file (refused while any
    /// usage record or lock is held; it keeps library users out until we are done), checks that no process
    /// maps or holds the file open, and unlinks it if the path still names that file.
    /// Nil when the file went meanwhile (someone else removed it): it is gone, as if it had never been found.
    private func unlinkClaimed(_ path: String, label: String, checkProcesses: Bool) -> CleanEvent.Outcome? {
        let file: ObjectFile
        do throws(SharedMemoryError) {
            file = try ObjectFile.openExisting(path, allowForeignOwner: anyOwner, site: CallSite(operation: "clean", object: path))
        } catch {
            if case .failure(.noSuchFileOrDirectory) = HousekeepingIO.lstatus(path) { return nil }
            return emit(label, .failed(error))
        }
        let raw = file.fd.rawValue
        switch valueOrErrno({ shm_shim_ofd_lock(raw, 1, 0, 0, 0) }) {
        case .success: break
        case .failure(.badFileDescriptor):
            // Opened read-only (no write permission): ask instead.
            if case .success(let conflicts) = valueOrErrno({ shm_shim_ofd_conflicts(raw, 1, 0, 0) }), conflicts != 0 {
                return emit(label, .kept("a usage record or lock is held on it"))
            }
        case .failure(.resourceTemporarilyUnavailable), .failure(.permissionDenied):
            return emit(label, .kept("a usage record or lock is held on it (a process is using it)"))
        case .failure(let err):
            return emit(label, .failed(site.error("fcntl(F_OFD_SETLK)", err, detail: path)))
        }
        if checkProcesses {
            let users = ProcessUsage.users(of: FileIdentity(device: UInt64(file.status.deviceID.rawValue), inode: UInt64(file.status.inode.rawValue)))
            if let pid = users.mappers.first {
                return emit(label, .kept("mapped by \(users.mappers.count) processes (pid \(pid))"))
            }
            if let pid = users.openers.first {
                return emit(label, .kept("open in \(users.openers.count) processes (pid \(pid))"))
            }
        }
        if dryRun { return emit(label, .wouldRemove) }
        guard file.isStillAtPath else {
            if case .failure(.noSuchFileOrDirectory) = HousekeepingIO.lstatus(path) { return nil }
            return emit(label, .kept("replaced meanwhile"))
        }
        switch valueOrErrno({ unlink(path) }) {
        case .success: return emit(label, .removed)
        case .failure(.noSuchFileOrDirectory): return nil  // removed by someone else meanwhile
        case .failure(let err): return emit(label, .failed(site.error("unlink", err, detail: path)))
        }
    }
}

extension ProcessUsage {
    /// The processes (other than this one) that map or hold open one file, looked up now.
    static func users(of file: FileIdentity) -> (mappers: [Int32], openers: [Int32]) {
        var mappers: [Int32] = []
        var openers: [Int32] = []
        let me = getpid()
        for pid in ProcessTable.allPIDs() where pid != me {
            if let maps = HousekeepingIO.readSmallFile("/proc/\(pid)/maps") {
                for line in maps.split(separator: "\n") {
                    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                    guard fields.count >= 5, UInt64(fields[4]) == file.inode else { continue }
                    let dev = fields[3].split(separator: ":")
                    guard dev.count == 2, let major = UInt64(dev[0], radix: 16), let minor = UInt64(dev[1], radix: 16),
                        FileIdentity(major: major, minor: minor, inode: file.inode) == file
                    else { continue }
                    mappers.append(pid)
                    break
                }
            }
            let dir = "/proc/\(pid)/fd"
            for entry in HousekeepingIO.directoryEntries(dir) {
                var status = stat()
                guard case .success = valueOrErrno({ stat(dir + "/" + entry, &status) }) else { continue }
                if FileIdentity(status) == file {
                    openers.append(pid)
                    break
                }
            }
        }
        return (mappers, openers)
    }
}
