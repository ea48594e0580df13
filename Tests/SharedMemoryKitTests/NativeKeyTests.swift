import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Segments on plain native keys (no legacy key): the lock semaphore shares the segment's key (System V: the
/// same key file and ftok key, POSIX: the same name), as in Qt 6.6+.
@Suite struct NativeKeyTests {
    static func nativeKey(_ backend: Backend, _ label: String = #function) -> NativeIPCKey {
        let name = TestEnvironment.uniqueName(label)
        return backend == .systemV ? NativeIPCKey("\(TempDirectory.qtTempPath())/\(name)", type: .systemV) : NativeIPCKey("/\(name)", type: .posixRealtime)
    }

    @Test(arguments: Backend.allCases)
    func createAttachDetach(backend: Backend) throws {
        let key = Self.nativeKey(backend)
        #expect(key.lockSemaphoreKey() == key)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 256)
        leaks.remember()
        let other = SharedMemory(key: key)
        try other.attach()
        try owner.withLock { try owner.write([42], at: 7) }
        #expect(try other.read(at: 7, count: 1) == [42])
        try other.detach()
        try owner.detach()
        leaks.expectClean()
    }

    /// Qt's hazard, seen with Qt 6.12: a second `create()` on a native System V key fails, but its lock
    /// semaphore (opened in Create mode on the same key file) unlinks that file, after which nobody can attach.
    /// Ours leaves the key file, so attaching still works.
    @Test(arguments: Backend.allCases)
    func failedSecondCreateLeavesTheSegmentReachable(backend: Backend) throws {
        let key = Self.nativeKey(backend)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        do {
            try SharedMemory(key: key).create(size: 64)
            Issue.record("a second create succeeded")
        } catch {
            #expect(error.code == .alreadyExists)
        }
        let late = SharedMemory(key: key)
        try late.attach()
        try late.detach()
        try owner.detach()
        leaks.expectClean()
    }

    @Test(.enabled(if: TestEnvironment.qtUnavailableReason == nil, "Qt peer unavailable"), arguments: Backend.allCases)
    func qtAndSwiftShareTheLockOnANativeKey(backend: Backend) throws {
        let key = Self.nativeKey(backend)
        var leaks = LeakCheck(key)
        let qt = try QtPeer("create", key: key, ["--size", "64", "--hold"])
        try qt.expectEvent("ready")
        leaks.remember()
        let swift = SharedMemory(key: key)
        try swift.attach()
        let holder = try QtPeer("hold-lock", key: key)
        try holder.expectEvent("locked")
        #expect(try !swift.tryLock(), "Qt holds the segment's lock")
        _ = try holder.finish()
        #expect(try swift.tryLock())
        try swift.unlock()
        try swift.detach()
        #expect(try qt.finish()["ok"] as? Bool == true)
        if backend == .posix { shm_unlink(key.nativeKey) }  // Qt never unlinks POSIX segments
        leaks.expectClean()
    }
}
