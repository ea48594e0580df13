import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Several processes on one segment: the helpers are `shm-harness` itself (create, dump, write, debug …).
@Suite struct MultiProcessTests {
    static func cli(_ key: NativeIPCKey) -> [String] { ["--native-key", key.toString()!] }

    /// One process creates and writes; another attaches and reads, through the CLI in both directions.
    @Test(arguments: Backend.allCases)
    func createWriteThenAttachRead(backend: Backend) throws {
        let name = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(name, type: backend.type)
        let creator = try TestEnvironment.harness(["create", "--key", name, "--type", backend.cliType, "--size", "64"])
        let printed = try #require(creator.readLine(timeout: 20))
        #expect(printed == key.toString())

        let writer = try TestEnvironment.harness(["write", "--offset", "4"] + Self.cli(key))
        writer.send("hello from another process")
        writer.closeInput()
        #expect(try writer.wait().exitCode == 0, "\(writer.standardError())")

        let reader = SharedMemory(key: key)
        try reader.attach(.readOnly)
        #expect(try reader.read(at: 4, count: 27) == Array("hello from another process\n".utf8))
        try reader.detach()

        let dumper = try TestEnvironment.harness(["dump", "--offset", "4", "--length", "5", "--key", name, "--type", backend.cliType])
        #expect(dumper.readLine(timeout: 20) == "hello")
        #expect(try dumper.wait().exitCode == 0)

        kill(creator.pid, SIGTERM)
        #expect(try creator.wait().exitCode == 0, "create detaches on SIGTERM: \(creator.standardError())")
        #expect(Traces.of(key).isEmpty)
    }

    /// N processes add to one counter under the segment's lock: no update is lost.
    @Test(arguments: Backend.allCases)
    func counterUnderLockLosesNothing(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        let workers = 6
        let iterations = 1500
        var helpers: [ChildProcess] = []
        for _ in 0..<workers {
            helpers.append(try TestEnvironment.harness(["debug", "add", "--iterations", "\(iterations)"] + Self.cli(key)))
        }
        for helper in helpers { #expect(try helper.wait(timeout: 120).exitCode == 0, "\(helper.standardError())") }
        let bytes = try owner.read(at: 0, count: 8)
        let total = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        #expect(total == UInt64(workers * iterations))
        try owner.detach()
        leaks.expectClean()
    }

    /// The counter's u64 at 0.
    static func counter(_ memory: SharedMemory) throws -> UInt64 {
        try memory.read(at: 0, count: 8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// Without the lock an update is lost, every time: both helpers read the counter (they say so), and only
    /// then does either write what it read plus 1. Proof that the counting test above can fail.
    @Test(arguments: Backend.allCases)
    func counterWithoutLockLosesAnUpdate(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        let helpers = try (0..<2).map { _ in
            try TestEnvironment.harness(["debug", "add", "--no-lock", "--handshake", "--iterations", "1"] + Self.cli(key))
        }
        for helper in helpers {
            #expect(helper.readLine(timeout: 30) == "attaching")
            #expect(helper.readLine(timeout: 30) == "locking")
            #expect(helper.readLine(timeout: 30) == "read 0", "\(helper.standardError())")
        }
        for helper in helpers { helper.send("write") }
        for helper in helpers { #expect(try helper.wait(timeout: 60).exitCode == 0, "\(helper.standardError())") }
        #expect(try Self.counter(owner) == 1, "both wrote 0 + 1: one update is lost")
        try owner.detach()
        leaks.expectClean()
    }

    /// The same interleaving under the segment's lock: while the first holds it between its read and its write,
    /// the second cannot even attach (Qt's attach takes the lock); once the first has written, the second reads 1,
    /// and nothing is lost.
    @Test(arguments: Backend.allCases)
    func theLockKeepsTheSecondReaderOut(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        let arguments = ["debug", "add", "--handshake", "--iterations", "1"] + Self.cli(key)
        let first = try TestEnvironment.harness(arguments)
        #expect(first.readLine(timeout: 30) == "attaching")
        #expect(first.readLine(timeout: 30) == "locking")
        #expect(first.readLine(timeout: 30) == "read 0", "\(first.standardError())")
        let second = try TestEnvironment.harness(arguments)
        #expect(second.readLine(timeout: 30) == "attaching", "\(second.standardError())")
        // attach takes the lock too (Qt's call order): the second waits there, saying nothing more
        #expect(second.readLine(timeout: 1) == nil, "the second got past the lock while the first held it")
        first.send("write")
        // Not "wait for the first to end" here: its detach takes the lock too (Qt's call order), and the second
        // may have taken it first, waiting for its own "write" (under load that ordering is common).
        #expect(second.readLine(timeout: 30) == "locking")
        #expect(second.readLine(timeout: 30) == "read 1", "the second reads what the first wrote: \(second.standardError())")
        second.send("write")
        #expect(try first.wait(timeout: 60).exitCode == 0, "\(first.standardError())")
        #expect(try second.wait(timeout: 60).exitCode == 0, "\(second.standardError())")
        #expect(try Self.counter(owner) == 2)
        try owner.detach()
        leaks.expectClean()
    }

    /// A process SIGKILLed while holding the System V lock does not block the others (SEM_UNDO), as in Qt.
    @Test func systemVHolderKilledDoesNotBlock() throws {
        let key = TestEnvironment.uniqueKey(.systemV)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        let holder = try TestEnvironment.harness(["debug", "hold-lock", "--crash"] + Self.cli(key))
        #expect(holder.readLine(timeout: 20) == "locked")
        #expect(try holder.wait().signal == SIGKILL)
        try owner.lock(timeout: .seconds(5))
        try owner.unlock()
        try owner.detach()
        leaks.expectClean()
    }

    /// POSIX semaphores have no undo: a holder that dies leaves the lock taken. Qt then hangs every later
    /// lock, attach and detach; ours fails with lock-error after the timeout while another live process might
    /// hold it, and the last user detaches at once and removes the segment and its semaphore (issue 10 item 6).
    @Test func posixHolderKilledGivesLockErrorNotAHang() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        // The owner would wait 20 s for the lock in create, attach and detach.
        let owner = SharedMemory(key: key, options: .init(operationTimeout: .seconds(20)))
        try owner.create(size: 64)
        let holder = try TestEnvironment.harness(["debug", "hold-lock", "--crash"] + Self.cli(key))
        #expect(holder.readLine(timeout: 20) == "locked")
        #expect(try holder.wait().signal == SIGKILL)
        do {
            try owner.lock(timeout: .milliseconds(200))
            Issue.record("the lock of a dead holder was taken")
        } catch {
            #expect(error.code == .lockError)
        }
        let late = SharedMemory(key: key, options: .init(operationTimeout: .milliseconds(200)))
        do { try late.attach(); Issue.record("attach went through a dead holder's lock") } catch {
            #expect(error.code == .lockError)
        }
        // The owner is now the only process that has the lock open (no other usage record, no other mapping of
        // the semaphore's file): whoever holds it is dead, so detach takes its place instead of waiting.
        let start = Date()
        try owner.detach()
        // Well inside the 20 s timeout (the proof reads /proc/*/maps; a child this test process is spawning at
        // that moment shares its mappings until it execs, which can defer the proof by a second or so).
        #expect(Date().timeIntervalSince(start) < 15, "no wait for a dead holder")
        #expect(!owner.isAttached)
        let left = Traces.of(key)
        #expect(left.isEmpty, "the last user removes the segment and its semaphore: \(left)")
        // Should the check fail, remove what this test made.
        shm_unlink(key.nativeKey)
        sem_unlink(key.lockSemaphoreKey().nativeKey)
    }

    /// Divergence: Qt's failing `create()` on an existing key resets (System V) or re-creates (POSIX) the lock
    /// while another process holds it. Ours leaves the held lock held.
    @Test(arguments: Backend.allCases)
    func failedCreateDoesNotBreakAHeldLock(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        let holder = try TestEnvironment.harness(["debug", "hold-lock"] + Self.cli(key))
        #expect(holder.readLine(timeout: 20) == "locked")
        let intruder = SharedMemory(key: key, options: .init(operationTimeout: .milliseconds(300)))
        do { try intruder.create(size: 64); Issue.record("create on an existing key succeeded") } catch {
            // The intruder cannot even take the lock to look: lock-error, and nothing was reset.
            #expect([.alreadyExists, .lockError].contains(error.code))
        }
        #expect(try !owner.tryLock(), "the holder's lock is still held")
        holder.send("")
        #expect(holder.readLine(timeout: 20) == "released")
        #expect(try holder.wait().exitCode == 0)
        #expect(try owner.tryLock())
        try owner.unlock()
        try owner.detach()
        #expect(Traces.of(key).isEmpty)
    }

    /// Ours removes a POSIX segment at the last detach of any process using the library, crashes included:
    /// an attacher that dies does not keep it alive, and the survivor's detach removes it.
    @Test func posixSegmentGoesWithTheLastUserEvenAfterACrash() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        let crasher = try TestEnvironment.harness(["debug", "hold-lock", "--crash"] + Self.cli(key))
        #expect(crasher.readLine(timeout: 20) == "locked")
        #expect(try crasher.wait().signal == SIGKILL)
        // The crash left the POSIX lock taken (no undo): release it by hand, as recovery would.
        let lock = try SystemSemaphore(key: key.lockSemaphoreKey())
        try lock.release()
        lock.close(removeIfUnused: false)
        try owner.detach()
        #expect(Traces.of(key).isEmpty, "the segment and its lock went with the last live user")
    }

    /// A segment outlives its creator while another process is attached; the last detach removes it.
    @Test(arguments: Backend.allCases)
    func lastDetacherRemoves(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let creator = try TestEnvironment.harness(["create", "--size", "128", "--hold-seconds", "0"] + Self.cli(key))
        let printed = creator.readLine(timeout: 20)
        #expect(printed == key.toString())
        // The creator detached at once: nobody else was attached, so the segment is gone already.
        #expect(try creator.wait().exitCode == 0)
        leaks.expectClean()

        let holder = try TestEnvironment.harness(["create", "--size", "128"] + Self.cli(key))
        #expect(holder.readLine(timeout: 20) == key.toString())
        let attacher = SharedMemory(key: key)
        try attacher.attach()
        leaks.remember()
        kill(holder.pid, SIGTERM)
        #expect(try holder.wait().exitCode == 0)
        #expect(!Traces.of(key).isEmpty, "still attached here")
        try attacher.detach()
        leaks.expectClean()
    }
}
