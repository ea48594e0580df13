import CBench
import Foundation
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hot paths allocate nothing: a lock/unlock (acquire/release) pair of every lock the library has makes no
/// heap allocation once warmed up. Counted by CBench's allocation counter (malloc & co. interposed in the
/// test executable, counted per thread), whose own negative control is the first test.
@Suite struct HotPathTests {
    /// Allocations made by `body` on this thread, after `warmUp` runs of it.
    static func allocations(warmUp: Int = 10, runs: Int = 1000, _ body: () throws -> Void) rethrows -> UInt64 {
        for _ in 0..<warmUp { try body() }
        let before = cbench_allocations()
        for _ in 0..<runs { try body() }
        return cbench_allocations() - before
    }

    @Test func theCounterSeesAllocations() throws {
        #expect(cbench_allocation_counter_works() == 1)
        // Negative control: rendering a key (what every lock did before) allocates, and is counted.
        let key = TestEnvironment.uniqueKey(.systemV)
        var total = 0
        let counted = Self.allocations(runs: 100) { total &+= key.description.utf8.count }
        #expect(counted >= 100, "rendering a key 100 times counted \(counted) allocations")
        #expect(total > 0)
    }

    @Test(arguments: Backend.allCases)
    func segmentLockUnlockAllocatesNothing(_ backend: Backend) throws {
        let memory = SharedMemory(key: TestEnvironment.uniqueKey(backend.type))
        try memory.create(size: 4096)
        defer { try? memory.detach() }
        let counted = try Self.allocations {
            try memory.lock()
            try memory.unlock()
        }
        #expect(counted == 0, "1000 lock/unlock pairs made \(counted) allocations")
        let timed = try Self.allocations {
            try memory.lock(timeout: .seconds(5))
            try memory.unlock()
        }
        #expect(timed == 0, "1000 timed lock/unlock pairs made \(timed) allocations")
        let tried = try Self.allocations {
            _ = try memory.tryLock()
            try memory.unlock()
        }
        #expect(tried == 0, "1000 tryLock/unlock pairs made \(tried) allocations")
    }

    @Test(arguments: Backend.allCases)
    func semaphoreAcquireReleaseAllocatesNothing(_ backend: Backend) throws {
        let key = NativeIPCKey.legacy(TestEnvironment.uniqueName(), type: backend.type, kind: .systemSemaphore)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        defer { semaphore.close() }
        let counted = try Self.allocations {
            try semaphore.acquire()
            try semaphore.release()
        }
        #expect(counted == 0, "1000 acquire/release pairs made \(counted) allocations")
    }

    @Test func inMemoryLocksAllocateNothing() throws {
        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(page, 4096) }
        let memory = UnsafeMutableRawBufferPointer(start: page, count: 4096)
        let futex = try FutexLock(initializingAt: 0, in: memory)
        let futexCount = try Self.allocations {
            try futex.lock()
            try futex.unlock()
        }
        #expect(futexCount == 0, "FutexLock: \(futexCount) allocations")
        let mutex = try RobustMutex(initializingAt: 64, in: memory)
        let mutexCount = try Self.allocations {
            try mutex.lock()
            try mutex.unlock()
        }
        #expect(mutexCount == 0, "RobustMutex: \(mutexCount) allocations")
    }

    @Test func lockFileAllocatesNothing() throws {
        let path = NSTemporaryDirectory() + "/" + TestEnvironment.uniqueName() + ".lock"
        let file = try LockFile(path: path)
        defer { file.remove() }
        let counted = try Self.allocations {
            try file.lock()
            try file.unlock()
        }
        #expect(counted == 0, "LockFile: \(counted) allocations")
    }

    /// FutexLock records the holder's pid without a getpid() per lock; a forked child records its own.
    @Test func futexOwnerIsTheForkedChildsPid() throws {
        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(page, 4096) }
        let memory = UnsafeMutableRawBufferPointer(start: page, count: 4096)
        let lock = try FutexLock(initializingAt: 0, in: memory)
        try lock.lock()
        #expect(lock.ownerPID == getpid())
        try lock.unlock()
        let report = (page + 512).assumingMemoryBound(to: Int32.self)
        report.pointee = 0
        let child = fork()
        if child == 0 {
            // the child: lock, write the recorded owner, exit (no Swift Testing here)
            if (try? lock.lock()) != nil, let owner = lock.ownerPID {
                report.pointee = owner
                try? lock.unlock()
            }
            _exit(0)
        }
        #expect(child > 0)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        #expect(report.pointee == child, "the child recorded \(report.pointee), its pid is \(child)")
    }
}
