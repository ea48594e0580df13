import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// The CLI contract, run as users run it: the built `shm-harness` binary.
@Suite struct CLITests {
    static func run(_ arguments: [String], input: String? = nil) throws -> (status: ChildProcess.Termination, out: [String], err: String) {
        let child = try TestEnvironment.harness(arguments)
        if let input { child.send(input) }
        child.closeInput()
        let out = child.remainingOutput(timeout: 30)
        let status = try child.wait(timeout: 30)
        return (status, out, child.standardError())
    }

    @Test func keyPrintsQtsString() throws {
        let r = try Self.run(["key", "--", "test"])
        #expect(r.status.exitCode == 0)
        #expect(r.out == [NativeIPCKey.legacy("test").toString()!])
        #expect(try Self.run(["key", "--type", "posix", "--semaphore", "--", "Noël"]).out
            == ["posix:/qipc_systemsem_Nolf74a492d6bd59d7591144462d27aa3e29d1701c1?legacyKey=Noël"])
        #expect(try Self.run(["key", "--type", "posix", "--native", "--", "hello"]).out
            == ["/qipc_sharedmemory_helloaaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"])
        // A key that looks like a flag goes after `--`.
        #expect(try Self.run(["key", "--type", "posix", "--native", "--", "--weird"]).out
            == [NativeIPCKey.legacy("--weird", type: .posixRealtime).nativeKey])
    }

    @Test func keyMatchesTheQtVectors() throws {
        // A sample of the recorded vectors, through the CLI (the library test covers all of them). Qt derives
        // System V key files under QDir::tempPath(), which honours TMPDIR: the vectors were recorded with
        // TMPDIR=/tmp (their tempDir), so the recorded temp path is replaced by this run's. A temp path with
        // characters that Qt's string form escapes cannot be substituted as text: then the CLI gets the
        // recorded one.
        let recorded = KeyVectorTests.vectors.tempDir
        let current = TempDirectory.qtTempPath()
        let plain = current.utf8.allSatisfy { $0 < 0x80 && (isalnum(Int32($0)) != 0 || "/._-".utf8.contains($0)) }
        let temp = plain ? current : recorded
        #expect(recorded.hasPrefix("/") && !recorded.hasSuffix("/"), "the vectors name their temp path")
        var substituted = 0
        for v in KeyVectorTests.vectors.legacy.prefix(400) where [81, 256].contains(v.type) && !v.key.isEmpty
            && !v.key.contains("\0") && !v.key.contains("\n") && !v.key.contains("\r")
        {
            var args = ["key", "--type", v.type == 81 ? "systemv" : "posix"]
            if v.kind == "systemsemaphore" { args.append("--semaphore") }
            var want = v.string ?? ""
            if v.type == 81 {
                #expect(want.hasPrefix("systemv:\(recorded)/qipc_"), "\(want)")
                want = "systemv:\(temp)/" + want.dropFirst("systemv:\(recorded)/".count)
                substituted += 1
            }
            let child = try TestEnvironment.harness(args + ["--", v.key], environment: plain ? [:] : ["TMPDIR": recorded])
            child.closeInput()
            let out = child.remainingOutput(timeout: 30)
            #expect(try child.wait(timeout: 30).exitCode == 0)
            #expect(out == [want], "\(v.key.debugDescription) with TMPDIR \(temp)")
        }
        #expect(substituted > 10)
    }

    @Test func badInputExitsWith2() throws {
        for args in [["key"], ["create", "--key", "x"], ["create", "--size", "5"], ["dump", "--key", "a", "--native-key", "posix:/a"],
                     ["dump", "--native-key", "bogus"], ["key", "--type", "windows", "--", "x"], ["no-such-command"]]
        {
            let r = try Self.run(args)
            #expect(r.status.exitCode == 2, "\(args): \(r.status) \(r.err)")
            #expect(!r.err.isEmpty)
        }
    }

    @Test func operationErrorsExitWith1AndSayWhat() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let r = try Self.run(["dump", "--native-key", key.toString()!])
        #expect(r.status.exitCode == 1)
        #expect(r.err.contains("not-found"))
        #expect(r.err.contains(key.toString()!))
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func createHoldsUntilTheTimeThenDetaches(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let creator = try TestEnvironment.harness(["create", "--size", "32", "--hold-seconds", "1"] + ["--native-key", key.toString()!])
        #expect(creator.readLine(timeout: 20) == key.toString())
        let dump = try Self.run(["dump", "--native-key", key.toString()!])
        #expect(dump.status.exitCode == 0)
        #expect(try creator.wait(timeout: 20).exitCode == 0)
        #expect(Traces.of(key).isEmpty)
    }

    /// Issue 10 item 6: a process dies holding a POSIX segment's lock (a POSIX semaphore has no undo). Every
    /// wait of a command is bounded by --lock-timeout (attach included), --no-lock takes no lock at all, and the
    /// creator, the last user, still removes the segment and its semaphore at once and exits 0.
    @Test func deadPOSIXLockHolderBlocksNoCommand() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let native = key.toString()!
        let creator = try TestEnvironment.harness(["create", "--size", "64", "--hold-seconds", "60", "--lock-timeout", "20", "--native-key", native])
        defer {
            if creator.isRunning { kill(creator.pid, SIGKILL); _ = try? creator.wait() }
            // What this test made, should a step have failed (never another's object: the key is unique).
            shm_unlink(key.nativeKey)
            sem_unlink(key.lockSemaphoreKey().nativeKey)
        }
        #expect(creator.readLine(timeout: 20) == native)
        let holder = try TestEnvironment.harness(["debug", "hold-lock", "--crash", "--native-key", native])
        #expect(holder.readLine(timeout: 20) == "locked")
        #expect(try holder.wait(timeout: 20).signal == SIGKILL)

        var start = Date()
        let bounded = try Self.run(["dump", "--lock-timeout", "2", "--native-key", native])
        let boundedSeconds = Date().timeIntervalSince(start)
        #expect(bounded.status.exitCode == 1)
        #expect(bounded.err.contains("lock-error"), "\(bounded.err)")
        #expect(boundedSeconds >= 1.9 && boundedSeconds < 10, "dump --lock-timeout 2 took \(boundedSeconds) s")

        start = Date()
        // With --no-lock nothing waits for the lock, not even attach and detach (a 20 s timeout would show).
        let unlocked = try Self.run(["dump", "--no-lock", "--lock-timeout", "20", "--length", "8", "--native-key", native])
        let unlockedSeconds = Date().timeIntervalSince(start)
        #expect(unlocked.status.exitCode == 0, "\(unlocked.err)")
        #expect(unlockedSeconds < 10, "dump --no-lock waited \(unlockedSeconds) s")

        // The creator is now the last live user: it detaches without waiting the 20 s and removes everything.
        start = Date()
        kill(creator.pid, SIGTERM)
        let end = try creator.wait(timeout: 60)
        let exitSeconds = Date().timeIntervalSince(start)
        #expect(end.exitCode == 0, "\(creator.standardError())")
        #expect(exitSeconds < 10, "the creator's exit took \(exitSeconds) s")
        #expect(Traces.of(key).isEmpty, "left: \(Traces.of(key))")
    }

    @Test func writeThenDumpRoundTrip() throws {
        let key = TestEnvironment.uniqueKey(.systemV)
        let owner = SharedMemory(key: key)
        try owner.create(size: 16)
        let w = try Self.run(["write", "--offset", "3", "--native-key", key.toString()!], input: "abc")
        #expect(w.status.exitCode == 0, "\(w.err)")
        let d = try Self.run(["dump", "--offset", "3", "--length", "3", "--no-lock", "--native-key", key.toString()!])
        #expect(d.out == ["abc"])
        let past = try Self.run(["write", "--offset", "15", "--native-key", key.toString()!], input: "toolong")
        #expect(past.status.exitCode == 1)
        #expect(past.err.contains("invalid-size"))
        try owner.detach()
    }
}
