import CShmShim
import Foundation
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The POSIX "is anyone still attached?" question (POSIX has no attach count: it reads /proc/PID/maps) is
/// asked only when the answer matters: when the lock semaphore could go (ours, no other library user) while
/// the segment still exists. A detach with library peers, or the last detach that unlinks the segment, reads
/// no process's maps, so its cost does not grow with the processes on the machine. Scans are counted per
/// thread by the shim (`shm_shim_process_scans`).
@Suite struct LastDetachTests {
    static func semaphoreFile(_ key: NativeIPCKey) -> String {
        "/dev/shm/sem." + key.lockSemaphoreKey().nativeKey.drop(while: { $0 == "/" })
    }

    @Test func detachWithPeersAndTheLastDetachReadNoProcessMaps() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let holder = SharedMemory(key: key)
        try holder.create(size: 4096)
        let before = shm_shim_process_scans()
        let visitor = SharedMemory(key: key)
        for _ in 0..<3 {
            try visitor.attach()
            try visitor.detach()
        }
        #expect(FileManager.default.fileExists(atPath: Self.semaphoreFile(key)), "the holder's lock stays")
        try holder.detach()
        #expect(shm_shim_process_scans() == before, "a detach read /proc/PID/maps")
        #expect(Traces.of(key).isEmpty, "left: \(Traces.of(key))")
    }

    /// A segment the library did not make (made here as Qt makes it: 0600, no mark) and that a process still
    /// maps keeps its lock semaphore; once nobody maps it, the lock goes at the next detach.
    @Test func aForeignSegmentStillMappedKeepsItsLock() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let fd = shm_shim_open("/dev/shm" + key.nativeKey, SHM_SHIM_O_RDWR | SHM_SHIM_O_CREAT | SHM_SHIM_O_EXCL | SHM_SHIM_O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        defer { shm_unlink(key.nativeKey) }
        #expect(ftruncate(fd, 4096) == 0)
        let mapped = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        close(fd)  // as Qt does: the mapping alone keeps it
        #expect(mapped != MAP_FAILED)

        let before = shm_shim_process_scans()
        let memory = SharedMemory(key: key)
        try memory.attach()
        try memory.detach()
        #expect(shm_shim_process_scans() > before, "the question had to be asked")
        #expect(FileManager.default.fileExists(atPath: Self.semaphoreFile(key)), "a mapped segment keeps its lock")

        munmap(mapped, 4096)
        try memory.attach()
        try memory.detach()
        #expect(!FileManager.default.fileExists(atPath: Self.semaphoreFile(key)), "nobody maps it: the lock goes")
    }
}
