import Foundation
import Testing

@testable import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// "Does any process map this /dev/shm file?" is answered by device and inode: every IPC-and-mount namespace
/// (an isolated testcase, a container, a second CI run) has a /dev/shm tmpfs of its own that numbers inodes
/// afresh, so another namespace's mapping can carry the same inode number. Seen when two CI runs went at
/// once: a dead POSIX lock holder's lock was not taken over, because a file with the same inode number was
/// mapped in the other run's namespace.
@Suite struct ProcessMapsTests {
    @Test func aMappingIsFoundByDeviceAndInodeOnly() throws {
        let path = "/dev/shm/shm-harness-maps-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0, "cannot make \(path): errno \(errno)")
        defer {
            close(fd)
            unlink(path)
        }
        #expect(ftruncate(fd, 4096) == 0)
        let address = mmap(nil, 4096, PROT_READ, MAP_SHARED, fd, 0)
        try #require(address != MAP_FAILED)
        defer { munmap(address, 4096) }
        var status = stat()
        #expect(fstat(fd, &status) == 0)
        let device = UInt64(status.st_dev)
        let inode = UInt64(status.st_ino)
        #expect(ProcessMaps.anyProcessMaps(device: device, inode: inode), "this process maps it")
        #expect(!ProcessMaps.anyProcessMaps(device: device, inode: inode, excluding: getpid()), "nobody else does")
        // the same inode number on another device (another namespace's /dev/shm) is another file
        #expect(!ProcessMaps.anyProcessMaps(device: device &+ 1, inode: inode), "another device is another file")
    }

    @Test func deviceNumbersAreReadAsTheKernelPrintsThem() {
        // st_dev 0x1a (tmpfs, 0:26) is printed as "00:1a"; a large device 259:65536 as "103:10000"
        let small = ProcessMaps.majorMinor(0x1a)
        #expect(small.0 == 0 && small.1 == 0x1a)
        #expect(ProcessMaps.device("00:1a").map { $0 == small } == true)
        let bigDevice: UInt64 = (259 & 0xfff) << 8 | (65536 & 0xff) | ((65536 & ~0xff) << 12)
        let big = ProcessMaps.majorMinor(bigDevice)
        #expect(big.0 == 259 && big.1 == 65536)
        #expect(ProcessMaps.device("103:10000").map { $0 == big } == true)
        #expect(ProcessMaps.device("zz") == nil)
    }
}
