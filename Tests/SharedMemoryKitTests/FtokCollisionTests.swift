import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Two legacy System V keys whose key files give one `ftok` key (here a hard link: one inode, the certain form
/// of the accident) share one segment but have two locks. Qt attaches the second key to the first key's
/// segment and removes the second key's lock semaphore with its creator; the library attaches alike, says why
/// the second create found a segment, and removes the second key's lock semaphore with its last user, although
/// the first key's user is still attached (the attach count cannot tell the two keys' users apart).
@Suite struct FtokCollisionTests {
    @Test func hardLinkedKeyFilesShareASegmentButLeaveNothingOfTheSecondKey() throws {
        let first = TestEnvironment.uniqueKey(.systemV, "collideFirst")
        let second = TestEnvironment.uniqueKey(.systemV, "collideSecond")
        var leaks = LeakCheck(first, second)
        let a = SharedMemory(key: first)
        try a.create(size: 4096)
        leaks.remember()
        a.data!.storeBytes(of: UInt64(1111), as: UInt64.self)
        #expect(link(first.nativeKey, second.nativeKey) == 0)

        let b = SharedMemory(key: second)
        do {
            try b.create(size: 4096)
            Issue.record("the second key's create succeeded")
        } catch {
            #expect(error.code == .alreadyExists)
            #expect(error.description.contains("has 2 names (hard links)"), "\(error)")
        }
        #expect(access(second.nativeKey, F_OK) == 0, "not this library's name: kept")
        try b.attach()
        #expect(b.data!.load(as: UInt64.self) == 1111)
        let lockKey = second.lockSemaphoreKey()
        let semaphoreKey = try #require(Traces.ftokKey(lockKey))
        #expect(semget(semaphoreKey, 0, 0) >= 0)
        try b.detach()
        #expect(semget(semaphoreKey, 0, 0) == -1, "the second key's lock semaphore is gone")
        #expect(access(lockKey.nativeKey, F_OK) != 0, "with its key file")
        #expect(a.isAttached && a.data!.load(as: UInt64.self) == 1111, "the first key's segment is untouched")

        #expect(unlink(second.nativeKey) == 0)
        try a.detach()
        leaks.expectClean()
    }
}
