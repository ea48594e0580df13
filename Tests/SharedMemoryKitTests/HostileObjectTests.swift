import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// A hostile local user: the library never deletes what it did not make, never adopts a stranger's object,
/// never blocks on an open. The stranger is `nobody` (setpriv); its System V objects are made by
/// Tests/Stranger/stranger_ipc.py at the exact `ftok` key the library will compute (the key file is made
/// first, so its inode, hence the key, is known), then handed to root with `IPC_SET`.
@Suite(.serialized) struct HostileObjectTests {
    static let strangerScript = TestEnvironment.packageRoot + "/Tests/Stranger/stranger_ipc.py"
    static let python = "/usr/bin/python3"

    static var strangerUnavailableReason: String? {
        if let reason = TestEnvironment.secondUserUnavailableReason { return reason }
        guard FileManager.default.isExecutableFile(atPath: python) else { return "\(python) is missing" }
        return nil
    }

    /// Runs the stranger helper as nobody (or as root, for clean-up); its one line of output.
    @discardableResult
    static func stranger(_ arguments: [String], asRoot: Bool = false) throws -> String {
        let prefix = asRoot ? [] : ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        let child = try ChildProcess(prefix + [python, strangerScript] + arguments)
        let line = child.readLine(timeout: 30) ?? ""
        let status = try child.wait(timeout: 30)
        guard status.exitCode == 0 else {
            throw TestFailure("stranger \(arguments): \(status): \(child.standardError())")
        }
        return line
    }

    /// Runs the harness (as root, or as nobody), feeding `input` on stdin; fails loudly if it runs longer than
    /// `timeout` (a blocked open would).
    static func harness(
        _ arguments: [String], input: String? = nil, asNobody: Bool = false, timeout: Double = 20
    ) throws -> (status: ChildProcess.Termination, stderr: String) {
        let child = asNobody ? try TestEnvironment.harnessAsNobody(arguments) : try TestEnvironment.harness(arguments)
        if let input { child.send(input) }
        child.closeInput()
        _ = child.remainingOutput(timeout: timeout)
        let status = try child.wait(timeout: timeout)
        return (status, child.standardError())
    }

    static func makeFile(_ path: String, contents: String, owner: uid_t? = nil) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestFailure("cannot make \(path): errno \(errno)") }
        _ = contents.utf8CString.dropLast().withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if let owner { fchown(fd, owner, owner) }
        close(fd)
    }

    static func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func nativeKeyArguments(_ path: String) -> [String] { ["--native-key", "systemv:" + path] }

    // MARK: 1. a native key never deletes the file it names

    enum Command: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case create, dump, write, clean, attach, libraryCreateDetach
        var testDescription: String { rawValue }
    }

    /// `systemv:PATH` naming an existing file the library did not make (here in the temp folder, where keys
    /// are allowed): every command leaves the file as it was, and no System V object behind.
    @Test(arguments: Command.allCases)
    func nativeKeyNamingAnExistingFileLeavesItAlone(command: Command) throws {
        let victim = TempDirectory.qtTempPath() + "/" + TestEnvironment.uniqueName("victim") + ".conf"
        try Self.makeFile(victim, contents: "precious\n")
        defer { unlink(victim) }
        let ipcKey = ftok(victim, 0x51)
        let key = NativeIPCKey(victim, type: .systemV)
        switch command {
        case .create:
            let run = try Self.harness(["create", "--size", "64", "--hold-seconds", "0"] + Self.nativeKeyArguments(victim))
            #expect(run.status.exitCode == 0, "\(run.stderr)")
        case .dump:
            let run = try Self.harness(["dump"] + Self.nativeKeyArguments(victim))
            #expect(run.status.exitCode == 1)
            #expect(run.stderr.contains("not-found"), "\(run.stderr)")
        case .write:
            let run = try Self.harness(["write"] + Self.nativeKeyArguments(victim), input: "x")
            #expect(run.status.exitCode == 1)
            #expect(run.stderr.contains("not-found"), "\(run.stderr)")
        case .clean:
            let child = try TestEnvironment.harness(["clean"] + Self.nativeKeyArguments(victim))
            let lines = child.remainingOutput(timeout: 20)
            #expect(try child.wait(timeout: 20).exitCode == 1, "kept is a failure for --native-key")
            #expect(lines.contains { $0.hasPrefix("kept key file \(victim): not a key file") }, "\(lines)")
        case .attach:
            do { try SharedMemory(key: key).attach(); Issue.record("attached to nothing") } catch {
                #expect(error.code == .notFound, "\(error)")
            }
        case .libraryCreateDetach:
            let memory = SharedMemory(key: key)
            try memory.create(size: 64)
            try memory.write(Array("scratch".utf8), at: 0)
            try memory.detach()
        }
        #expect(Self.contents(victim) == "precious\n", "the file a native key names survives \(command)")
        #expect(Traces.systemVObjects(keys: [ipcKey]).isEmpty, "no System V object left under \(victim)")
    }

    /// A native key naming a file outside the temp and runtime folders is refused before anything is opened,
    /// naming the key and the rule; `--allow-any-path` opts in, and the file still survives.
    @Test func nativeKeyOutsideTheTempFolderNeedsConsent() throws {
        // A writable folder outside the temp folders (the checkout may itself be under /tmp).
        let folder = try #require(
            [TestEnvironment.packageRoot + "/.build", "/var/tmp", "/var/cache", "/root"].first {
                access($0, W_OK) == 0 && KeyPathPolicy.refusal(NativeIPCKey($0 + "/x", type: .systemV)) != nil
            }, "no writable folder outside the temp folders")
        let victim = folder + "/" + TestEnvironment.uniqueName("outside") + ".conf"
        try Self.makeFile(victim, contents: "system file\n")
        defer { unlink(victim) }
        let ipcKey = ftok(victim, 0x51)
        for arguments in [["create", "--size", "64", "--hold-seconds", "0"], ["dump"], ["write"]] {
            let run = try Self.harness(arguments + Self.nativeKeyArguments(victim), input: "x")
            #expect(run.status.exitCode == 1, "\(arguments)")
            #expect(run.stderr.contains("key-error"), "\(run.stderr)")
            #expect(run.stderr.contains("systemv:\(victim)") && run.stderr.contains("outside the temp folder"), "\(run.stderr)")
        }
        let clean = try TestEnvironment.harness(["clean"] + Self.nativeKeyArguments(victim))
        let lines = clean.remainingOutput(timeout: 20)
        #expect(try clean.wait(timeout: 20).exitCode == 1)
        #expect(lines.contains { $0.contains("outside the temp folder") }, "\(lines)")
        do { _ = try SystemSemaphore(key: NativeIPCKey(victim, type: .systemV)); Issue.record("opened a semaphore on \(victim)") } catch {
            #expect(error.code == .keyError)
            #expect(error.description.contains("allowAnyPath"), "\(error)")
        }
        #expect(Self.contents(victim) == "system file\n")

        // Opting in: the key is used, and the file is still not removed (the library did not make it).
        let dump = try Self.harness(["dump", "--allow-any-path"] + Self.nativeKeyArguments(victim))
        #expect(dump.status.exitCode == 1)
        #expect(dump.stderr.contains("not-found"), "\(dump.stderr)")
        let create = try Self.harness(["create", "--allow-any-path", "--size", "64", "--hold-seconds", "0"] + Self.nativeKeyArguments(victim))
        #expect(create.status.exitCode == 0, "\(create.stderr)")
        #expect(Self.contents(victim) == "system file\n")
        #expect(Traces.systemVObjects(keys: [ipcKey]).isEmpty)
    }

    /// An unprivileged user's own file, named by their own native key, survives their `dump`.
    @Test(.enabled(if: TestEnvironment.secondUserUnavailableReason == nil, "cannot run as nobody here"))
    func unprivilegedDumpLeavesTheUsersFileAlone() throws {
        // in nobody's own temp folder (its TMPDIR), where the key path rule lets nobody's dump open it
        let victim = TestEnvironment.sharedTempDirectory + "/" + TestEnvironment.uniqueName("nobodys") + ".txt"
        try Self.makeFile(victim, contents: "nobody's notes\n", owner: 65534)
        defer { unlink(victim) }
        let ipcKey = ftok(victim, 0x51)
        let run = try Self.harness(["dump"] + Self.nativeKeyArguments(victim), asNobody: true)
        #expect(run.status.exitCode == 1)
        #expect(run.stderr.contains("not-found"), "\(run.stderr)")
        #expect(Self.contents(victim) == "nobody's notes\n")
        #expect(Traces.systemVObjects(keys: [ipcKey]).isEmpty)
    }

    // MARK: 2. a stranger's System V objects are not adopted

    /// Nobody makes a 2-semaphore set (it looks like the library's) at the key of a segment's lock semaphore
    /// and hands it to root. Root's `create` refuses it instead of locking through it.
    @Test(.enabled(if: strangerUnavailableReason == nil, "cannot act as a stranger here"))
    func squattedLockSemaphoreIsNotAdopted() throws {
        let key = TestEnvironment.uniqueKey(.systemV, "squatlock")
        let lockKey = key.lockSemaphoreKey()
        try Self.makeFile(lockKey.nativeKey, contents: "")
        defer { unlink(lockKey.nativeKey) }
        let ipcKey = ftok(lockKey.nativeKey, 0x51)
        let semid = try Self.stranger(["sem", "\(ipcKey)", "2", "1", "0"])
        defer { _ = try? Self.stranger(["rmsem", semid], asRoot: true) }

        let memory = SharedMemory(key: key)
        do { try memory.create(size: 64); Issue.record("create adopted nobody's semaphore set as its lock") } catch {
            #expect(error.code == .permissionDenied, "\(error)")
            #expect(error.description.contains("created by uid 65534"), "\(error)")
        }
        #expect(!memory.isAttached)
        do { _ = try SystemSemaphore(key: lockKey); Issue.record("opened nobody's semaphore set") } catch {
            #expect(error.code == .permissionDenied, "\(error)")
        }
        // The stranger still controls it (as creator): the lock would exclude nobody.
        try Self.stranger(["setval", semid, "5"])
        #expect(try Self.stranger(["getval", semid]) == "5")

        // `clean` does not remove it either: another user made it (root keeps it unless --any-owner).
        let clean = try TestEnvironment.harness(["clean", "--key", key.legacyKey!])
        let lines = clean.remainingOutput(timeout: 20)
        #expect(try clean.wait(timeout: 20).exitCode == 1)
        #expect(lines.contains { $0.contains("semaphore set \(semid)") && $0.contains("created by uid 65534") }, "\(lines)")
        #expect(try Self.stranger(["getval", semid]) == "5", "clean left the stranger's set alone")

        // Explicit consent uses it, and never removes it: it is not ours.
        let consenting = try SystemSemaphore(key: lockKey, options: .init(allowForeignOwner: true))
        #expect(try consenting.value() == 5)
        consenting.close()
        #expect(try Self.stranger(["getval", semid]) == "5", "a foreign set used with consent is not removed")
        #expect(Self.contents(lockKey.nativeKey) == "", "the key file we made by hand is not removed either")
        #expect(!FileManager.default.fileExists(atPath: key.nativeKey), "nothing of the segment was made")
    }

    /// Nobody makes a segment at the key of root's next segment and hands it to root; root's `write` refuses it
    /// and the stranger reads nothing.
    @Test(.enabled(if: strangerUnavailableReason == nil, "cannot act as a stranger here"))
    func squattedSegmentIsNeitherAttachedNorWritten() throws {
        let name = TestEnvironment.uniqueName("squatseg")
        let key = NativeIPCKey.legacy(name, type: .systemV)
        try Self.makeFile(key.nativeKey, contents: "")
        defer { unlink(key.nativeKey) }
        let ipcKey = ftok(key.nativeKey, 0x51)
        let shmid = try Self.stranger(["shm", "\(ipcKey)", "4096", "0"])
        defer { _ = try? Self.stranger(["rmshm", shmid], asRoot: true) }

        let run = try Self.harness(["write", "--key", name], input: "TOP SECRET")
        #expect(run.status.exitCode == 1)
        #expect(run.stderr.contains("permission-denied") && run.stderr.contains("created by uid 65534"), "\(run.stderr)")
        #expect(try Self.stranger(["read", shmid, "64"]) == "", "the stranger's segment received nothing")
        do { try SharedMemory(key: key).attach(.readOnly); Issue.record("attached to nobody's segment") } catch {
            #expect(error.code == .permissionDenied, "\(error)")
        }
        // Consent attaches; the last detach does not remove a segment another user made.
        let consenting = SharedMemory(key: key, options: .init(allowForeignOwner: true))
        try consenting.attach(.readOnly)
        try consenting.detach()
        #expect(try Self.stranger(["read", shmid, "64"]) == "", "still there after the consenting detach")
        #expect(Traces.of(key.lockSemaphoreKey()).isEmpty, "the lock semaphore the library made is gone again")
    }

    // MARK: 7. a FIFO, a directory or a socket at a key path: no hang, a clear error

    enum Planted: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case fifo, directory, socket
        var testDescription: String { rawValue }
        var word: String {
            switch self {
            case .fifo: "is a FIFO"
            case .directory: "is a directory"
            case .socket: "is a socket"
            }
        }
    }

    /// Plants `kind` at `path` (as root: the "other user" for nobody); returns what undoes it.
    static func plant(_ kind: Planted, at path: String) throws -> () -> Void {
        switch kind {
        case .fifo:
            guard mkfifo(path, 0o444) == 0 else { throw TestFailure("mkfifo \(path): errno \(errno)") }
            chmod(path, 0o444)
            return { unlink(path) }
        case .directory:
            guard mkdir(path, 0o755) == 0 else { throw TestFailure("mkdir \(path): errno \(errno)") }
            return { rmdir(path) }
        case .socket:
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            // A long TMPDIR makes the path longer than sun_path: bind through the folder's descriptor instead
            // (/proc/self/fd/N/NAME names the same place).
            let slash = path.lastIndex(of: "/")!
            let folderFD = open(String(path[..<slash]), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            defer { if folderFD >= 0 { close(folderFD) } }
            let bytes = Array("/proc/self/fd/\(folderFD)/\(path[path.index(after: slash)...])".utf8)
            guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                throw TestFailure("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw TestFailure("bind \(path): errno \(errno)") }
            return {
                close(fd)
                unlink(path)
            }
        }
    }

    /// Something another user planted at a Qt key-file path (System V) or a POSIX name: `dump` and `write` as
    /// nobody, `dump` and `create` as root, each refused within the timeout with a clear error; the lock
    /// semaphore they made is removed again.
    @Test(
        .enabled(if: TestEnvironment.secondUserUnavailableReason == nil, "cannot run as nobody here"),
        arguments: Planted.allCases, Backend.allCases)
    func nonRegularFileAtAKeyPathIsRefusedWithoutBlocking(kind: Planted, backend: Backend) throws {
        let name = TestEnvironment.uniqueName("plant")
        // Qt's key, with the key file in the folder nobody's commands use too (their TMPDIR), named in full so
        // that root's and nobody's commands reach the same path.
        let key = NativeIPCKey.legacy(
            name, type: backend.type, tempDirectory: backend == .systemV ? TestEnvironment.sharedTempDirectory : nil)
        let path = backend == .systemV ? key.nativeKey : "/dev/shm" + key.nativeKey
        let undo = try Self.plant(kind, at: path)
        defer { undo() }
        let cli = ["--native-key", try #require(key.toString())]
        for (command, asNobody) in [(["dump"], true), (["write"], true), (["dump"], false)] {
            let run = try Self.harness(command + cli, input: "x", asNobody: asNobody, timeout: 20)
            #expect(run.status.exitCode == 1, "\(command) as \(asNobody ? "nobody" : "root"): \(run.stderr)")
            #expect(run.stderr.contains(kind.word) && run.stderr.contains("not a regular file"), "\(run.stderr)")
        }
        let create = try Self.harness(["create", "--size", "64", "--hold-seconds", "0"] + cli, timeout: 20)
        #expect(create.status.exitCode == 1, "\(create.stderr)")
        #expect(Traces.of(key.lockSemaphoreKey()).isEmpty, "the lock semaphore of the failed commands is gone")
        var status = stat()
        #expect(lstat(path, &status) == 0, "the planted object is left where it was")
    }
}
