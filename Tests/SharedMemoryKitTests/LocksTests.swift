import Foundation
import SystemPackage
import SharedMemoryKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The three locks over shared memory: the layout shared with C, mutual exclusion across processes,
/// a holder's death, try-lock and timeouts.
@Suite struct LocksTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case futex, robustMutex = "robust-mutex", lockfile
        var testDescription: String { rawValue }
    }

    /// A file in /dev/shm holding the lock area at 0 and the counters at 64 and 72 (what the helpers use).
    final class Board {
        let directory: ScratchDirectory
        let path: String
        let file: MappedFile
        let mapping: FileMapping
        let kind: Kind
        var futex: FutexLock?
        var mutex: RobustMutex?
        var lockFile: LockFile?

        init(_ kind: Kind, _ label: String = #function) throws {
            directory = try ScratchDirectory(label)
            path = directory.file("board")
            file = try MappedFile.create(at: path, size: 4096)
            mapping = try file.map()
            self.kind = kind
            switch kind {
            case .futex: futex = try FutexLock(initializingAt: 0, in: mapping.bytes)
            case .robustMutex: mutex = try RobustMutex(initializingAt: 0, in: mapping.bytes)
            case .lockfile: lockFile = try LockFile(forResourceAt: path)
            }
        }

        var counter: UInt64 { mapping.baseAddress.load(fromByteOffset: 64, as: UInt64.self) }
        var check: UInt64 { mapping.baseAddress.load(fromByteOffset: 72, as: UInt64.self) }
        var arguments: [String] { ["--file", path, "--lock", kind.rawValue] }

        func tryLock() throws(SharedMemoryError) {
            try futex?.tryLock(); try mutex?.tryLock(); try lockFile?.tryLock()
        }
        func lock(timeout: Duration) throws(SharedMemoryError) {
            try futex?.lock(timeout: timeout); try mutex?.lock(timeout: timeout); try lockFile?.lock(timeout: timeout)
        }
        func unlock() throws(SharedMemoryError) {
            try futex?.unlock(); try mutex?.unlock(); try lockFile?.unlock()
        }

        deinit { lockFile?.remove() }
    }

    /// The bytes of docs/lock-layout.md, as the C side asserts them.
    @Test func layoutMatchesTheDocument() throws {
        #expect(MemoryLayout<LockAreaLayout>.size == 64)
        #expect(MemoryLayout<LockAreaLayout>.offset(of: \.magic) == 0)
        #expect(MemoryLayout<LockAreaLayout>.offset(of: \.kind) == 4)
        #expect(MemoryLayout<LockAreaLayout>.offset(of: \.reserved) == 8)
        #expect(MemoryLayout<LockAreaLayout>.offset(of: \.lock) == 16)
        #expect(MemoryLayout<FutexLockFields>.offset(of: \.word) == 0)
        #expect(MemoryLayout<FutexLockFields>.offset(of: \.owner) == 4)
        #expect(RobustMutex.fitsLockArea)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 8)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0xAA)
        let lock = try FutexLock(initializingAt: 64, in: memory)
        #expect(Array(memory[64..<72]) == Array("SHML".utf8) + [1, 0, 0, 0])
        #expect(memory[72..<128].allSatisfy { $0 == 0 }, "reserved bytes and the free word are zero")
        try lock.lock()
        #expect(memory.load(fromByteOffset: 80, as: UInt32.self) == 1)
        #expect(memory.load(fromByteOffset: 84, as: UInt32.self) == UInt32(getpid()))
        #expect(memory[0..<64].allSatisfy { $0 == 0xAA }, "nothing outside the area is touched")
        try lock.unlock()
        _ = try RobustMutex(initializingAt: 0, in: memory)
        #expect(Array(memory[0..<8]) == Array("SHML".utf8) + [2, 0, 0, 0])
    }

    /// An area that is not initialised, holds the other kind, is misaligned or does not fit is refused.
    @Test func badAreasAreRefused() throws {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 8)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(SharedMemoryError.caught { _ = try FutexLock(at: 0, in: memory) }?.code == .lockError)
        _ = try FutexLock(initializingAt: 0, in: memory)
        let wrongKind = SharedMemoryError.caught { _ = try RobustMutex(at: 0, in: memory) }
        #expect(wrongKind?.code == .lockError && wrongKind?.description.contains("futex") == true)
        #expect(SharedMemoryError.caught { _ = try FutexLock(initializingAt: 4, in: memory) }?.code == .invalidSize)
        #expect(SharedMemoryError.caught { _ = try FutexLock(initializingAt: 72, in: memory) }?.code == .invalidSize)
        let futex = try FutexLock(at: 0, in: memory)
        #expect(SharedMemoryError.caught { try futex.unlock() }?.code == .lockError, "unlocking a free lock")
        let mutex = try RobustMutex(initializingAt: 64, in: memory)
        #expect(SharedMemoryError.caught { try mutex.unlock() }?.code == .lockError, "unlocking a mutex we do not hold")
        #expect(SharedMemoryError.caught { try mutex.markConsistent() }?.code == .lockError)
    }

    /// N processes add to a counter under each lock: no update is lost.
    @Test(arguments: Kind.allCases)
    func processesAddingUnderTheLockLoseNothing(kind: Kind) throws {
        let board = try Board(kind)
        let workers = 4
        let iterations = kind == .lockfile ? 2000 : 20000
        let helpers = try (0..<workers).map { _ in
            try FileSharingHelpers.helper(["add"] + board.arguments + ["--iterations", "\(iterations)"])
        }
        for helper in helpers {
            #expect(try helper.wait(timeout: 180).exitCode == 0, "\(helper.standardError())")
        }
        #expect(board.counter == UInt64(workers * iterations))
        #expect(board.check == board.counter)
    }

    /// Without the lock an update is lost, every time: both helpers read the counter (they say so), and only
    /// then does either write what it read plus 1. Proof that the counting test above can fail.
    @Test func addingWithoutTheLockLosesAnUpdate() throws {
        let board = try Board(.futex)
        let helpers = try (0..<2).map { _ in
            try FileSharingHelpers.helper(["add", "--no-lock", "--handshake", "--iterations", "1"] + board.arguments)
        }
        for helper in helpers {
            #expect(helper.readLine(timeout: 30) == "locking")
            #expect(helper.readLine(timeout: 30) == "read 0", "\(helper.standardError())")
        }
        for helper in helpers { helper.send("write") }
        for helper in helpers { #expect(try helper.wait(timeout: 60).exitCode == 0, "\(helper.standardError())") }
        #expect(board.counter == 1, "both wrote 0 + 1: one update is lost")
    }

    /// The same interleaving under each lock: while the first holds it between its read and its write, the
    /// second cannot read; once the first has written, the second reads 1, and nothing is lost.
    @Test(arguments: Kind.allCases)
    func theLockKeepsTheSecondReaderOut(kind: Kind) throws {
        let board = try Board(kind)
        let arguments = ["add", "--handshake", "--iterations", "1"] + board.arguments
        let first = try FileSharingHelpers.helper(arguments)
        #expect(first.readLine(timeout: 30) == "locking")
        #expect(first.readLine(timeout: 30) == "read 0", "\(first.standardError())")
        let second = try FileSharingHelpers.helper(arguments)
        #expect(second.readLine(timeout: 30) == "locking", "\(second.standardError())")
        #expect(second.readLine(timeout: 1) == nil, "the second read while the first held the lock")
        first.send("write")
        #expect(try first.wait(timeout: 60).exitCode == 0, "\(first.standardError())")
        #expect(second.readLine(timeout: 30) == "read 1", "the second reads what the first wrote: \(second.standardError())")
        second.send("write")
        #expect(try second.wait(timeout: 60).exitCode == 0, "\(second.standardError())")
        #expect(board.counter == 2 && board.check == 2)
    }

    /// A holder SIGKILLed half-way through an update: the next locker gets `owner-died`, holds the mutex,
    /// repairs, marks it consistent, and the counter stays consistent for everyone after.
    @Test func robustMutexSurvivesAKilledHolder() throws {
        let board = try Board(.robustMutex)
        let mutex = try #require(board.mutex)
        let holder = try FileSharingHelpers.helper(["hold", "--crash"] + board.arguments)
        try FileSharingHelpers.expectLine(holder, startingWith: "locked")
        #expect(try holder.wait().signal == SIGKILL)
        #expect(board.counter == 1 && board.check == 0, "the update was left half-done")

        let died = SharedMemoryError.caught { try mutex.lock(timeout: .seconds(10)) }
        #expect(died?.code == .ownerDied && died?.underlyingError == .previousOwnerDied, "\(String(describing: died))")
        #expect(SharedMemoryError.caught { try mutex.tryLock() }?.code == .busy, "we hold it now")
        board.mapping.baseAddress.storeBytes(of: board.check, toByteOffset: 64, as: UInt64.self)
        try mutex.markConsistent()
        try mutex.unlock()

        let helpers = try (0..<3).map { _ in
            try FileSharingHelpers.helper(["add"] + board.arguments + ["--iterations", "5000"])
        }
        for helper in helpers {
            #expect(try helper.wait(timeout: 120).exitCode == 0, "\(helper.standardError())")
        }
        #expect(board.counter == 15000 && board.check == 15000)
    }

    /// The next locker may be another process: it repairs and goes on.
    @Test func anotherProcessRepairsAfterAKilledHolder() throws {
        let board = try Board(.robustMutex)
        let holder = try FileSharingHelpers.helper(["hold", "--crash"] + board.arguments)
        try FileSharingHelpers.expectLine(holder, startingWith: "locked")
        #expect(try holder.wait().signal == SIGKILL)
        let prober = try FileSharingHelpers.helper(["probe-lock", "--timeout", "10"] + board.arguments)
        #expect(try FileSharingHelpers.expectLine(prober, startingWith: "acquired") == "acquired repairs=1")
        #expect(try prober.wait().exitCode == 0)
        #expect(board.counter == 0 && board.check == 0)
        try board.tryLock()
        try board.unlock()
    }

    /// A lock file is dropped by the kernel when its holder dies; a futex word is not (its waiters time out).
    @Test(arguments: [Kind.lockfile, .futex])
    func killedHolderOfTheOtherLocks(kind: Kind) throws {
        let board = try Board(kind)
        let holder = try FileSharingHelpers.helper(["hold", "--crash"] + board.arguments)
        try FileSharingHelpers.expectLine(holder, startingWith: "locked")
        #expect(try holder.wait().signal == SIGKILL)
        if kind == .lockfile {
            try board.lock(timeout: .seconds(5))
            try board.unlock()
        } else {
            let stuck = SharedMemoryError.caught { try board.lock(timeout: .milliseconds(100)) }
            #expect(stuck?.code == .lockError && stuck?.underlyingError == .timedOut)
            #expect(board.futex?.ownerPID == holder.pid)
        }
    }

    /// Try-lock says `busy` and a timed lock says `lock-error` while another process holds the lock; both
    /// succeed once it lets go.
    @Test(arguments: Kind.allCases)
    func tryLockAndTimeouts(kind: Kind) throws {
        let board = try Board(kind)
        let holder = try FileSharingHelpers.helper(["hold"] + board.arguments)
        try FileSharingHelpers.expectLine(holder, startingWith: "locked")
        #expect(SharedMemoryError.caught { try board.tryLock() }?.code == .busy)
        let start = ContinuousClock.now
        let timedOut = SharedMemoryError.caught { try board.lock(timeout: .milliseconds(200)) }
        let waited = ContinuousClock.now - start
        #expect(timedOut?.code == .lockError && timedOut?.underlyingError == .timedOut, "\(String(describing: timedOut))")
        #expect(waited >= .milliseconds(190) && waited < .seconds(5), "waited \(waited)")

        holder.send("")
        try FileSharingHelpers.expectLine(holder, startingWith: "released")
        #expect(try holder.wait().exitCode == 0)
        try board.lock(timeout: .seconds(5))
        let prober = try FileSharingHelpers.helper(["probe-lock"] + board.arguments)
        #expect(try FileSharingHelpers.expectLine(prober, startingWith: "busy") == "busy")
        try board.unlock()
        try board.tryLock()
        try board.unlock()
        _ = try prober.wait()
    }

    /// The locks work on any mapping: a memfd and a SharedMemory segment's `data`.
    @Test func locksLiveInAnyMapping() throws {
        let memfd = try MemFD.create(name: "locks", size: 4096)
        let mapping = try memfd.map()
        let futex = try FutexLock(initializingAt: 128, in: mapping.bytes)
        try futex.tryLock()
        #expect(SharedMemoryError.caught { try FutexLock(at: 128, in: mapping.bytes).tryLock() }?.code == .busy)
        try futex.unlock()

        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let segment = SharedMemory(key: key)
        try segment.create(size: 256)
        defer { try? segment.detach() }
        let data = try #require(segment.data)
        let mutex = try RobustMutex(initializingAt: 64, in: data)
        try mutex.lock()
        let other = try RobustMutex(at: 64, in: data)
        let fromAnotherThread = Thread.detachNewThreadAndWait { SharedMemoryError.caught { try other.tryLock() } }
        #expect(fromAnotherThread?.code == .busy)
        try mutex.unlock()
    }
}

extension Thread {
    /// Runs `body` on a new thread and waits for its result.
    static func detachNewThreadAndWait<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        nonisolated(unsafe) var result: T?
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }
}
