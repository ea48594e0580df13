import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// `shm-harness ls` and `clean`, run as users run them, on real objects made by helper processes.
///
/// `clean --stale` is always scoped with `--match` to this test's unique names: tests of other suites run at
/// the same time and may be looking at crash leftovers of their own on purpose.
@Suite(.serialized) struct HousekeepingTests {
    /// A private runtime dir (XDG_RUNTIME_DIR, 0700) for the journals, and a folder for run files.
    final class Sandbox {
        let directory: String
        /// Qt's temp dir for `ls` and `clean`, when not the tests' own.
        var tempDirectory: String?
        var environment: [String: String] { ["XDG_RUNTIME_DIR": directory].merging(tempDirectory.map { ["TMPDIR": $0] } ?? [:]) { a, _ in a } }
        var runsDirectory: String { directory + "/shm-harness/runs" }

        init() throws {
            var template = Array("\(TempDirectory.qtTempPath())/shmh-house-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
            directory = String(cString: made)
            chmod(directory, 0o700)
        }

        /// Writes a journal for run `token` by hand, as the runner would.
        func writeJournal(token: String, pid: Int32, start: UInt64, segments: [NativeIPCKey] = [], files: [String] = [],
                          ended: Bool = false) throws {
            try FileManager.default.createDirectory(atPath: runsDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            chmod(directory + "/shm-harness", 0o700)
            var text = "shm-harness-journal 1\nrun \(token) pid=\(pid) start=\(start) time=\(Int(time(nil)))\n"
            for key in segments { text += "segment \(RunJournal.encode(key.toString()!))\n" }
            for file in files { text += "file \(RunJournal.encode(file))\n" }
            if ended { text += "end \(token)\n" }
            let path = runsDirectory + "/\(token).journal"
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o600)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func run(_ arguments: [String], environment: [String: String] = [:])
        throws -> (status: ChildProcess.Termination, out: [String], err: String)
    {
        let child = try TestEnvironment.harness(arguments, environment: environment)
        child.closeInput()
        let out = child.remainingOutput(timeout: 60)
        let status = try child.wait(timeout: 60)
        return (status, out, child.standardError())
    }

    /// `ls --json`, parsed.
    static func list(_ sandbox: Sandbox, all: Bool = false) throws -> [String: Any] {
        let r = try run(["ls", "--json"] + (all ? ["--all"] : []), environment: sandbox.environment)
        guard r.status.exitCode == 0 else { throw TestFailure("ls --json: \(r.status) \(r.err)") }
        let data = Data(r.out.joined(separator: "\n").utf8)
        guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestFailure("ls --json printed no object")
        }
        return document
    }

    static func objects(_ document: [String: Any], containing text: String) -> [[String: Any]] {
        (document["objects"] as? [[String: Any]] ?? []).filter { object in
            ["path", "key_file", "qt_name", "legacy_key"].contains { (object[$0] as? String)?.contains(text) == true }
        }
    }

    /// A pid that is gone and the start time it had (a child spawned, read, killed and reaped).
    static func deadRunner() throws -> (Int32, UInt64) {
        let child = try ChildProcess(["/bin/sleep", "60"])
        guard let start = ProcessTable.startTime(of: child.pid) else { throw TestFailure("no start time for \(child.pid)") }
        kill(child.pid, SIGKILL)
        try child.wait()
        #expect(ProcessTable.isAlive(child.pid) == false)
        return (child.pid, start)
    }

    /// `shm-harness create` holding a segment of `key` (returns once it printed the key).
    static func holdingCreator(_ key: NativeIPCKey, asNobody: Bool = false) throws -> ChildProcess {
        let arguments = ["create", "--native-key", key.toString()!, "--size", "4096", "--hold-seconds", "120"]
        let child = asNobody ? try TestEnvironment.harnessAsNobody(arguments) : try TestEnvironment.harness(arguments)
        guard let line = child.readLine(timeout: 30), line == key.toString() else {
            throw TestFailure("create \(key) did not start: \(child.standardError())")
        }
        return child
    }

    static func crash(_ child: ChildProcess) throws {
        kill(child.pid, SIGKILL)
        let status = try child.wait()
        #expect(status.signal == SIGKILL)
    }

    static func systemVKeys(of key: NativeIPCKey) -> [Int32] {
        [key, key.lockSemaphoreKey()].compactMap { Traces.ftokKey($0) }
    }

    // MARK: the crashed run

    @Test func aRunKilledMidScenarioIsCleanedByCleanStale() throws {
        let sandbox = try Sandbox()
        let base = TestEnvironment.uniqueName()
        let token = "run\(base)"
        let systemV = NativeIPCKey.legacy(base + "-sysv-0", type: .systemV)
        let posix = NativeIPCKey.legacy(base + "-posix-1", type: .posixRealtime)
        let runFile = sandbox.directory + "/shm-harness-board-\(base)"
        var leak = LeakCheck(systemV, posix)

        // The run's objects, made by processes that are then killed mid-scenario; one dies holding the lock.
        let creators = [try Self.holdingCreator(systemV), try Self.holdingCreator(posix)]
        leak.remember()
        let ftokKeys = Self.systemVKeys(of: systemV)
        #expect(ftokKeys.count == 2)
        let systemVObjects = Traces.systemVObjectIDs(keys: Set(ftokKeys))
        for key in [systemV, posix] {
            let holder = try Self.run(["debug", "hold-lock", "--crash", "--native-key", key.toString()!])
            #expect(holder.status.signal == SIGKILL, "\(holder.status) \(holder.err)")
        }
        FileManager.default.createFile(atPath: runFile, contents: Data(count: 4096), attributes: [.posixPermissions: 0o600])
        FileManager.default.createFile(atPath: runFile + ".lock", contents: nil, attributes: [.posixPermissions: 0o600])
        let (pid, start) = try Self.deadRunner()
        try sandbox.writeJournal(token: token, pid: pid, start: start, segments: [systemV, posix], files: [runFile])

        // While the creators live: listed, in use.
        var document = try Self.list(sandbox)
        for object in Self.objects(document, containing: base) where object["kind"] as? String != "run-file" {
            #expect(object["stale"] as? Bool != true, "\(object)")
        }
        for creator in creators { try Self.crash(creator) }

        // After the kill: every object listed, stale, its legacy key recovered from the journal.
        document = try Self.list(sandbox)
        // The Qt names keep only the letters: these match through the legacy keys the journal gives back.
        let found = Self.objects(document, containing: base).filter { $0["kind"] as? String != "run-file" }
        let kinds = found.map { $0["kind"] as? String ?? "?" }.sorted()
        #expect(kinds == ["key-file", "key-file", "posix-segment", "posix-semaphore", "sysv-segment", "sysv-semaphore"],
                "\(found)")
        for object in found {
            #expect(object["stale"] as? Bool == true, "\(object)")
            #expect(object["legacy_key_source"] as? String == "journal \(token)", "\(object)")
            #expect(object["key_recoverable"] as? Bool == true)
            let legacy = object["legacy_key"] as? String
            #expect(legacy == systemV.legacyKey || legacy == posix.legacyKey)
        }
        let segment = try #require(found.first { $0["kind"] as? String == "sysv-segment" })
        #expect(segment["key_string"] as? String == systemV.toString())
        #expect(segment["made_by"] as? String == "library")
        #expect(segment["attached"] as? Int == 0)
        #expect(segment["creator_alive"] as? Bool == false)
        #expect(segment["run"] as? String == token)
        let posixSegment = try #require(found.first { $0["kind"] as? String == "posix-segment" })
        #expect(posixSegment["key_string"] as? String == posix.toString())
        #expect(posixSegment["mode"] as? String == "1600")
        let runFiles = (document["objects"] as? [[String: Any]] ?? []).filter { ($0["path"] as? String)?.hasPrefix(runFile) == true }
        #expect(runFiles.count == 2 && runFiles.allSatisfy { $0["kind"] as? String == "run-file" && $0["stale"] as? Bool == true })
        let journal = (document["journals"] as? [[String: Any]] ?? []).first { $0["token"] as? String == token }
        #expect(journal?["state"] as? String == "stale")
        #expect(journal?["runner_pid"] as? Int == Int(pid))

        // The text table says the same.
        let table = try Self.run(["ls"], environment: sandbox.environment)
        #expect(table.out.contains { $0.contains("sysv-segment") && $0.contains("legacy key \"\(systemV.legacyKey!)\" from journal \(token)") })

        let clean = try Self.run(["clean", "--stale", "--match", base], environment: sandbox.environment)
        #expect(clean.status.exitCode == 0, "\(clean.out) \(clean.err)")
        for expected in ["removed System V segment", "removed System V semaphore set", "removed key file",
                         "removed POSIX segment", "removed POSIX semaphore", "removed run file", "removed run journal"] {
            #expect(clean.out.contains { $0.hasPrefix(expected) }, "\(expected): \(clean.out)")
        }
        leak.expectClean()
        #expect(Traces.stillThere(systemVObjects, keys: Set(ftokKeys)).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: runFile) && !FileManager.default.fileExists(atPath: runFile + ".lock"))
        #expect(!FileManager.default.fileExists(atPath: sandbox.runsDirectory + "/\(token).journal"))
        #expect(Self.objects(try Self.list(sandbox), containing: base).isEmpty)
    }

    // MARK: what clean never removes

    @Test(arguments: Backend.allCases)
    func cleanNeverRemovesAnObjectInUse(_ backend: Backend) throws {
        let sandbox = try Sandbox()
        let base = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(base, type: backend.type)
        var leak = LeakCheck(key)
        let creator = try Self.holdingCreator(key)
        leak.remember()
        // Its run is over (the journal's runner is gone), but the creator still holds the segment.
        let (pid, start) = try Self.deadRunner()
        try sandbox.writeJournal(token: "run\(base)", pid: pid, start: start, segments: [key])

        for arguments in [["clean", "--native-key", key.toString()!], ["clean", "--run", "run\(base)"]] {
            let r = try Self.run(arguments, environment: sandbox.environment)
            #expect(r.status.exitCode == 1, "\(arguments): \(r.out) \(r.err)")
            #expect(!r.out.contains { $0.hasPrefix("removed") }, "\(r.out)")
            #expect(r.out.contains { $0.hasPrefix("kept") && ($0.contains("attached") || $0.contains("usage record")) }, "\(r.out)")
        }
        let stale = try Self.run(["clean", "--stale", "--match", base], environment: sandbox.environment)
        #expect(stale.status.exitCode == 0)
        #expect(!stale.out.contains { $0.hasPrefix("removed") && !$0.contains("run journal") }, "\(stale.out)")
        #expect(stale.out.contains { $0.hasPrefix("kept run journal") }, "\(stale.out)")
        #expect(Traces.of(key).count == 2)
        let segment = SharedMemory(key: key)
        try segment.attach(.readOnly)
        try segment.detach()

        kill(creator.pid, SIGTERM)  // it detaches: the last detach removes everything
        #expect(try creator.wait().exitCode == 0)
        leak.expectClean()
        let after = try Self.run(["clean", "--run", "run\(base)"], environment: sandbox.environment)
        #expect(after.status.exitCode == 0 && after.out.contains { $0.hasPrefix("removed run journal") }, "\(after.out)")
    }

    /// Two cleaners of one stale journal at once (two runs starting together, a run and `clean --stale`) take
    /// turns: side by side each found the other's claims on the files, counted them as left, and both kept the
    /// journal although everything it named was gone.
    @Test func twoCleanersAtOnceLeaveNoJournal() throws {
        let sandbox = try Sandbox()
        let base = TestEnvironment.uniqueName()
        let folder = sandbox.directory + "/files"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let (pid, start) = try Self.deadRunner()
        for round in 0..<5 {
            let token = "run\(base)r\(round)"
            let files = (0..<8).map { "\(folder)/\(token)-\($0)" }
            // O_CLOEXEC: a child another test spawns meanwhile must not inherit the file (clean keeps an open file).
            for file in files {
                let fd = open(file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
                #expect(fd >= 0 && write(fd, "x", 1) == 1)
                close(fd)
            }
            try sandbox.writeJournal(token: token, pid: pid, start: start, files: files)
            let cleaners = try (0..<2).map { _ in
                try TestEnvironment.harness(["clean", "--stale", "--match", token], environment: sandbox.environment)
            }
            var said: [String] = []
            for cleaner in cleaners {
                cleaner.closeInput()
                said += cleaner.remainingOutput(timeout: 60)
                #expect(try cleaner.wait(timeout: 60).exitCode == 0, "\(cleaner.standardError())")
            }
            #expect(files.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "round \(round): \(said)")
            #expect(!FileManager.default.fileExists(atPath: sandbox.runsDirectory + "/\(token).journal"), "round \(round): \(said)")
        }
    }

    @Test(.disabled(if: TestEnvironment.secondUserUnavailableReason != nil, "\(TestEnvironment.secondUserUnavailableReason ?? "")"),
          arguments: Backend.allCases)
    func cleanLeavesAnotherUsersObjectsWithoutAnyOwner(_ backend: Backend) throws {
        let sandbox = try Sandbox()
        sandbox.tempDirectory = TestEnvironment.sharedTempDirectory  // nobody makes the key files: ls looks there
        let base = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(base, type: backend.type, tempDirectory: TestEnvironment.sharedTempDirectory)
        var leak = LeakCheck(key)
        let creator = try Self.holdingCreator(key, asNobody: true)
        leak.remember()
        try Self.crash(creator)  // stale now, and nobody's
        // No journal names it, so its legacy key is not recoverable: find it by the SHA-1 in its Qt names.
        let hash = String(NativeIPCKey.legacyName(base, kind: .sharedMemory).suffix(40))

        let mine = Self.objects(try Self.list(sandbox), containing: hash)
        #expect(mine.isEmpty, "ls without --all lists only the caller's objects: \(mine)")
        let everyone = Self.objects(try Self.list(sandbox, all: true), containing: hash)
        #expect(everyone.count == (backend == .systemV ? 4 : 2), "\(everyone)")
        for object in everyone {
            #expect(object["owner_uid"] as? Int == 65534 && object["stale"] as? Bool == true, "\(object)")
            #expect(object["key_recoverable"] as? Bool == false && object["legacy_key"] is NSNull)
        }

        let byKey = try Self.run(["clean", "--native-key", key.toString()!], environment: sandbox.environment)
        #expect(byKey.status.exitCode == 1, "\(byKey.out) \(byKey.err)")
        #expect(byKey.out.contains { $0.hasPrefix("kept") && $0.contains("owned by uid 65534") }, "\(byKey.out)")
        let stale = try Self.run(["clean", "--stale", "--match", hash], environment: sandbox.environment)
        #expect(!stale.out.contains { $0.hasPrefix("removed") }, "\(stale.out)")
        #expect(Traces.of(key).count == 2, "\(Traces.of(key))")

        let forced = try Self.run(["clean", "--native-key", key.toString()!, "--any-owner"], environment: sandbox.environment)
        #expect(forced.status.exitCode == 0, "\(forced.out) \(forced.err)")
        #expect(forced.out.contains { $0.hasPrefix("removed") })
        leak.expectClean()
    }

    @Test func anyOwnerNeedsRootAndBadInputExitsWith2() throws {
        for arguments in [["clean"], ["clean", "--match", "x"], ["clean", "--stale", "--type", "posix"],
                          ["clean", "--key", "a", "--native-key", "posix:/a"], ["clean", "--native-key", "bogus"],
                          ["clean", "--run", "../x"], ["clean", "--stale", "--match", ""]] {
            let r = try Self.run(arguments)
            #expect(r.status.exitCode == 2, "\(arguments): \(r.status) \(r.err)")
        }
        if !TestEnvironment.isRoot {
            #expect(try Self.run(["clean", "--stale", "--any-owner"]).status.exitCode == 2)
        }
        let missing = try Self.run(["clean", "--key", TestEnvironment.uniqueName()])
        #expect(missing.status.exitCode == 1 && missing.err.contains("nothing found"), "\(missing.err)")
    }

    // MARK: dry run

    @Test(arguments: Backend.allCases)
    func dryRunRemovesNothing(_ backend: Backend) throws {
        let sandbox = try Sandbox()
        let base = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(base, type: backend.type)
        var leak = LeakCheck(key)
        try Self.crash(try Self.holdingCreator(key))
        leak.remember()
        let (pid, start) = try Self.deadRunner()
        try sandbox.writeJournal(token: "run\(base)", pid: pid, start: start, segments: [key])
        let before = Traces.of(key)
        let ftokKeys = Set(Self.systemVKeys(of: key))
        let systemVBefore = Traces.systemVObjects(keys: ftokKeys)
        #expect(!before.isEmpty)

        for arguments in [["clean", "--dry-run", "--stale", "--match", base], ["clean", "--dry-run", "--native-key", key.toString()!],
                          ["clean", "--dry-run", "--run", "run\(base)"]] {
            let r = try Self.run(arguments, environment: sandbox.environment)
            #expect(r.status.exitCode == 0, "\(arguments): \(r.out) \(r.err)")
            #expect(r.out.contains { $0.hasPrefix("would remove") }, "\(r.out)")
            #expect(!r.out.contains { $0.hasPrefix("removed") }, "\(r.out)")
            #expect(Traces.of(key) == before)
            #expect(Traces.systemVObjects(keys: ftokKeys) == systemVBefore)
            #expect(FileManager.default.fileExists(atPath: sandbox.runsDirectory + "/run\(base).journal"))
        }
        // Then for real, by run token.
        let r = try Self.run(["clean", "--run", "run\(base)"], environment: sandbox.environment)
        #expect(r.status.exitCode == 0, "\(r.out) \(r.err)")
        leak.expectClean()
        #expect(!FileManager.default.fileExists(atPath: sandbox.runsDirectory + "/run\(base).journal"))
    }

    // MARK: ls --json

    static let objectFields: Set<String> = [
        "kind", "id", "key", "path", "owner_uid", "owner", "creator_uid", "mode", "size", "semaphores", "attached",
        "open_by", "usage_records", "creator_pid", "last_pid", "creator_alive", "last_alive", "waiting", "made_by",
        "qt_name", "qt_kind", "key_letters", "legacy_key", "legacy_key_source", "key_recoverable", "key_string",
        "key_file", "project_id", "anchors", "run", "stale", "reason",
    ]
    static let journalFields: Set<String> = [
        "token", "path", "state", "reason", "runner_pid", "runner_start", "time", "owner_uid", "segments", "files",
        "lockfiles", "problems",
    ]

    @Test func lsJSONHasTheDocumentedFields() throws {
        let sandbox = try Sandbox()
        let base = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(base, type: .posixRealtime)
        var leak = LeakCheck(key)
        let creator = try Self.holdingCreator(key)
        leak.remember()
        defer {
            kill(creator.pid, SIGTERM)
            _ = try? creator.wait()
            leak.expectClean()
        }
        try sandbox.writeJournal(token: "run\(base)", pid: getpid(), start: ProcessTable.startTime(of: getpid())!, segments: [key])

        for all in [false, true] {
            let document = try Self.list(sandbox, all: all)
            #expect(Set(document.keys) == ["format", "version", "uid", "all_users", "objects", "journals", "warnings"])
            #expect(document["format"] as? String == "shm-harness-ls" && document["version"] as? Int == 1)
            #expect(document["all_users"] as? Bool == all)
            let objects = try #require(document["objects"] as? [[String: Any]])
            for object in objects {
                #expect(Set(object.keys) == Self.objectFields, "\(object)")
                #expect(IPCObject.Kind(rawValue: object["kind"] as? String ?? "") != nil)
                #expect(["library", "qt", "run", "unknown"].contains(object["made_by"] as? String ?? ""))
                #expect((object["mode"] as? String)?.count == 4)
                #expect(object["reason"] is String && object["anchors"] is [String])
                #expect(object["stale"] is Bool || object["stale"] is NSNull)
                // Round trip: the same object serialises and parses back the same.
                let again = try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: object)) as? NSDictionary
                #expect(again == object as NSDictionary)
            }
            let journals = try #require(document["journals"] as? [[String: Any]])
            for journal in journals { #expect(Set(journal.keys) == Self.journalFields, "\(journal)") }
            let ours = try #require(journals.first { $0["token"] as? String == "run\(base)" })
            #expect(ours["state"] as? String == "running")
            #expect(ours["segments"] as? [String] == [key.toString()!])
        }
        // The run is "ours" and still going: clean --run refuses.
        let refused = try Self.run(["clean", "--run", "run\(base)"], environment: sandbox.environment)
        #expect(refused.status.exitCode == 1 && refused.err.contains("still going"), "\(refused.err)")
    }

    // MARK: journals

    @Test func journalParsing() throws {
        let key = NativeIPCKey.legacy("counter-abc-0", type: .systemV)
        let text = """
            shm-harness-journal 1
            run abc pid=4242 start=777 time=1700000000
            segment \(RunJournal.encode(key.toString()!))
            file \(RunJournal.encode("/dev/shm/shm-harness-board abc"))
            lockfile /tmp/x.lock
            mystery 1
            segment not%ZZencoded

            """
        let journal = try RunJournal.parse(text, path: "/x/abc.journal")
        #expect(journal.token == "abc" && journal.runnerPID == 4242 && journal.runnerStartTime == 777 && journal.time == 1700000000)
        #expect(journal.segmentKeys == [key])
        #expect(journal.files == ["/dev/shm/shm-harness-board abc"])
        #expect(journal.lockFiles == ["/tmp/x.lock"])
        #expect(!journal.ended)
        #expect(journal.problems.count == 2, "\(journal.problems)")
        #expect(RunJournal.encode("a b%?=") == "a%20b%25%3F%3D")
        #expect(RunJournal.decode("a%20b%25%3F%3D") == "a b%?=")
        #expect(throws: SharedMemoryError.self) { try RunJournal.parse("shm-harness-journal 2\n", path: "/x") }

        var live = journal
        live.runnerPID = getpid()
        live.runnerStartTime = ProcessTable.startTime(of: getpid())
        #expect(live.state() == .running)
        live.runnerStartTime! += 1
        guard case .stale(let reason) = live.state() else { Issue.record("a changed start time is not stale"); return }
        #expect(reason.contains("another process"))
        live.ended = true
        #expect(live.state() == .ended)
    }

    @Test func journalDirectoryRules() throws {
        let sandbox = try Sandbox()
        let uid = geteuid()
        #expect(JournalDirectory.runtimeDirectory(xdgRuntimeDir: sandbox.directory) == sandbox.directory)
        #expect(JournalDirectory.runtimeDirectory(xdgRuntimeDir: nil) == "/tmp/shm-harness-\(uid)")
        chmod(sandbox.directory, 0o755)
        #expect(JournalDirectory.runtimeDirectory(xdgRuntimeDir: sandbox.directory) == "/tmp/shm-harness-\(uid)")
        chmod(sandbox.directory, 0o700)
        let link = sandbox.directory + "-link"
        symlink(sandbox.directory, link)
        defer { unlink(link) }
        #expect(JournalDirectory.runtimeDirectory(xdgRuntimeDir: link) == "/tmp/shm-harness-\(uid)")

        // A level below that is a symlink, or open to others, is refused (and nothing behind it is read).
        let elsewhere = sandbox.directory + "/elsewhere"
        mkdir(elsewhere, 0o700)
        symlink(elsewhere, sandbox.directory + "/shm-harness")
        let viaLink = try Self.run(["clean", "--run", "x"], environment: sandbox.environment)
        #expect(viaLink.status.exitCode == 1 && viaLink.err.contains("symbolic link"), "\(viaLink.err)")
        let ls = try Self.run(["ls"], environment: sandbox.environment)
        #expect(ls.status.exitCode == 0 && ls.err.contains("run journals not read"), "\(ls.err)")
        unlink(sandbox.directory + "/shm-harness")
        mkdir(sandbox.directory + "/shm-harness", 0o755)
        let open = try Self.run(["clean", "--run", "x"], environment: sandbox.environment)
        #expect(open.status.exitCode == 1 && open.err.contains("accessible by others"), "\(open.err)")
    }

    // MARK: names

    @Test func qtNamesAndLegacyKeysFromLetters() {
        let name = NativeIPCKey.legacyName("counter", kind: .sharedMemory)
        let parsed = QtLegacyName(name)
        #expect(parsed?.letters == "counter" && parsed?.kind == .sharedMemory)
        #expect(parsed?.keyIfLettersOnly == "counter")
        let digits = QtLegacyName(NativeIPCKey.legacyName("counter-1", kind: .systemSemaphore))
        #expect(digits?.letters == "counter" && digits?.kind == .systemSemaphore && digits?.keyIfLettersOnly == nil)
        #expect(QtLegacyName("qipc_sharedmemory_short") == nil)
        #expect(QtLegacyName("pulse-shm-1234") == nil)
    }
}

/// Real Qt leftovers (PySide6): what the Qt bug threads complain about, listed and cleaned.
@Suite(.serialized, .disabled(if: TestEnvironment.qtUnavailableReason != nil, "\(TestEnvironment.qtUnavailableReason ?? "")"))
struct HousekeepingQtTests {
    /// Qt's POSIX segment stays after a clean exit; Qt's System V segment stays after its creator is killed.
    @Test(arguments: Backend.allCases)
    func qtLeftoversAreListedAsQtsAndCleanedByKey(_ backend: Backend) throws {
        let sandbox = try HousekeepingTests.Sandbox()
        let base = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(base, type: backend.type)
        var leak = LeakCheck(key)
        let qt = try QtPeer("create", key: key, ["--size", "64", "--hold"])
        try qt.expectEvent("ready")
        leak.remember()
        if backend == .posix {
            #expect(try qt.finish()["ok"] as? Bool == true)  // detaches and exits normally: Qt leaks the segment
        } else {
            try HousekeepingTests.crash(qt.process)
        }
        let hash = String(NativeIPCKey.legacyName(base, kind: .sharedMemory).suffix(40))
        let found = HousekeepingTests.objects(try HousekeepingTests.list(sandbox), containing: hash)
        let segment = try #require(found.first { ($0["kind"] as? String)?.hasSuffix("segment") == true }, "\(found)")
        #expect(segment["made_by"] as? String == "qt", "\(segment)")
        #expect(segment["stale"] as? Bool == true, "\(segment)")
        #expect(segment["key_recoverable"] as? Bool == false)
        if backend == .systemV {
            let set = try #require(found.first { $0["kind"] as? String == "sysv-semaphore" }, "\(found)")
            #expect(set["semaphores"] as? Int == 1 && set["made_by"] as? String == "qt", "\(set)")
        }
        let r = try HousekeepingTests.run(["clean", "--key", base, "--type", backend.cliType], environment: sandbox.environment)
        #expect(r.status.exitCode == 0, "\(r.out) \(r.err)")
        #expect(r.out.contains { $0.hasPrefix("removed") && $0.contains("segment") }, "\(r.out)")
        leak.expectClean()
    }
}
