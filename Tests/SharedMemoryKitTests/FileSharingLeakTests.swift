import Foundation
import SystemPackage
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Nothing is left behind: every descriptor the file-sharing API opens is closed, every temporary file and
/// socket file removed.
@Suite struct FileSharingLeakTests {
    /// Runs in a child process (an exit test) so that the /proc/self/fd count is exact: tests running in
    /// parallel in the runner open descriptors of their own.
    @Test func everyDescriptorAndFileIsGone() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            func fail(_ message: String) -> Never {
                FileSharingHelpers.writeError(message)
                exit(1)
            }
            var template = Array("/dev/shm/shmh-leak-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { fail("mkdtemp") }
            let directory = String(cString: made)
            let before = FileSharingHelpers.openDescriptors()
            do {
                do {
                    let anonymous = try MappedFile.temporary(in: directory, size: 4096)
                    let named = try MappedFile.temporary(in: directory, size: 4096, keepName: true)
                    let plain = try MappedFile.create(at: directory + "/plain", size: 8192)
                    let mapping = try plain.map()
                    let futex = try FutexLock(initializingAt: 0, in: mapping.bytes)
                    try futex.lock()
                    try futex.unlock()
                    let privateMap = try anonymous.map(.private)
                    try privateMap.write([1], at: 0)
                    let lockFile = try LockFile(forResourceAt: directory + "/plain")
                    try lockFile.lock()
                    try lockFile.unlock()
                    lockFile.remove()

                    let memfd = try MemFD.create(name: "leak", size: 4096)
                    let memMap = try memfd.map()
                    let mutex = try RobustMutex(initializingAt: 0, in: memMap.bytes)
                    try mutex.lock()
                    try mutex.unlock()
                    try memMap.unmap()
                    try memfd.addSeals([.shrink, .grow])
                    let listener = try UnixSocket.listen(at: directory + "/sock")
                    let client = try UnixSocket.connect(to: directory + "/sock")
                    let server = try listener.accept()
                    try client.send(descriptor: memfd.descriptor!)
                    let received = try MemFD(adopting: try server.receiveDescriptor().descriptor)
                    guard try received.seals() == [.shrink, .grow] else { fail("seals lost in transit") }
                    let inherited = try DescriptorPassing.inheritableCopy(of: memfd.descriptor!)
                    try inherited.close()
                    _ = try SharingDirectory.choose()
                    _ = try FileSystemType.of(path: directory)

                    try mapping.unmap()
                    try privateMap.unmap()
                    plain.close()
                    named.close()
                    anonymous.close()
                    memfd.close()
                    received.close()
                    listener.close()
                    client.close()
                    server.close()
                }
                try FileManager.default.removeItem(atPath: directory + "/plain")
            } catch {
                fail("unexpected: \(error)")
            }
            let after = FileSharingHelpers.openDescriptors()
            let left = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? ["?"]
            rmdir(directory)
            guard after == before else {
                let leaked = after.subtracting(before).sorted()
                fail("descriptors left open: \(leaked); closed: \(before.subtracting(after).sorted())")
            }
            guard left.isEmpty else { fail("files left in \(directory): \(left)") }
        }
    }

    /// Dropping the objects without closing them closes and unmaps too (deinit).
    @Test func releasingObjectsClosesThem() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let before = FileSharingHelpers.openDescriptors()
            do {
                let memfd = try MemFD.create(name: "dropped", size: 4096)
                let mapping = try memfd.map()
                try mapping.write([1], at: 0)
                let temporary = try MappedFile.temporary(in: "/dev/shm", size: 4096, keepName: true)
                _ = try temporary.map()
            } catch {
                FileSharingHelpers.writeError("unexpected: \(error)")
                exit(1)
            }
            let after = FileSharingHelpers.openDescriptors()
            guard after == before else {
                FileSharingHelpers.writeError("left open: \(after.subtracting(before).sorted())")
                exit(1)
            }
            exit(0)
        }
    }
}
