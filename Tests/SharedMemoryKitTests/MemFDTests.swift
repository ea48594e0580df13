import Foundation
import SystemPackage
import SharedMemoryKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// memfd: the kernel's seal checklist (tools/testing/selftests/memfd), and handing a memfd on by
/// inheritance and over a Unix socket.
@Suite struct MemFDTests {
    static let size = 8192

    static func make(_ name: String = #function) throws -> MemFD {
        try MemFD.create(name: String(name.prefix(40)), size: size)
    }

    @Test func newMemFDHasNoSealsUnlessSealingIsDisallowed() throws {
        #expect(try Self.make().seals() == [])
        let unsealable = try MemFD.create(name: "no-sealing", size: 4096, allowSealing: false)
        #expect(try unsealable.seals() == [.seal])
        #expect(SharedMemoryError.caught { try unsealable.addSeals(.shrink) }?.code == .sealed)
    }

    /// F_SEAL_WRITE: no write, no writable shared mapping, no hole punching; resizing still works.
    @Test func writeSeal() throws {
        let memfd = try Self.make()
        try memfd.addSeals(.write)
        #expect(try memfd.seals() == .write)
        #expect(try memfd.read(at: 0, count: 16).count == 16)
        #expect(SharedMemoryError.caught { try memfd.write([1], at: 0) }?.code == .sealed)
        #expect(SharedMemoryError.caught { _ = try memfd.map(.shared, writable: true) }?.code == .sealed)
        #expect(SharedMemoryError.caught { try memfd.allocate(length: Self.size, punchHole: true) }?.code == .sealed)
        let readOnly = try memfd.map(.shared, writable: false)
        try readOnly.unmap()
        try memfd.resize(to: Self.size / 2)  // the kernel's mfd_assert_shrink under F_SEAL_WRITE
        try memfd.resize(to: Self.size * 2)
        #expect(SharedMemoryError.caught { try memfd.write([UInt8](repeating: 1, count: Self.size * 8), at: 0) }?.code == .sealed)
    }

    /// F_SEAL_WRITE is refused (busy) while a writable shared mapping exists.
    @Test func writeSealWaitsForWritableMappings() throws {
        let memfd = try Self.make()
        let mapping = try memfd.map(.shared, writable: true)
        let refusal = SharedMemoryError.caught { try memfd.addSeals(.write) }
        #expect(refusal?.code == .busy && refusal?.underlyingError == .resourceBusy)
        try mapping.unmap()
        try memfd.addSeals(.write)
    }

    /// F_SEAL_SHRINK: no shrinking; writing and growing work.
    @Test func shrinkSeal() throws {
        let memfd = try Self.make()
        try memfd.addSeals(.shrink)
        try memfd.write([7], at: 0)
        #expect(SharedMemoryError.caught { try memfd.resize(to: Self.size / 2) }?.code == .sealed)
        try memfd.resize(to: Self.size * 2)
        try memfd.allocate(length: Self.size * 4)
        #expect(try memfd.size() == Self.size * 4)
        try memfd.write([UInt8](repeating: 1, count: Self.size * 8), at: 0)
        #expect(try memfd.size() == Self.size * 8)
    }

    /// F_SEAL_GROW: no growing by ftruncate, fallocate or a write past the end; shrinking works.
    @Test func growSeal() throws {
        let memfd = try Self.make()
        try memfd.addSeals(.grow)
        try memfd.write([7], at: 0)
        #expect(SharedMemoryError.caught { try memfd.resize(to: Self.size * 2) }?.code == .sealed)
        #expect(SharedMemoryError.caught { try memfd.allocate(length: Self.size * 4) }?.code == .sealed)
        #expect(SharedMemoryError.caught { try memfd.write([UInt8](repeating: 1, count: Self.size * 8), at: 0) }?.code == .sealed)
        try memfd.resize(to: Self.size / 2)
        #expect(try memfd.size() == Self.size / 2)
    }

    /// F_SEAL_SEAL: seals may be added again until F_SEAL_SEAL; after it, no change at all.
    @Test func sealSeal() throws {
        let memfd = try Self.make()
        try memfd.addSeals([.shrink, .write])
        try memfd.addSeals([.shrink, .write])
        try memfd.addSeals([.grow, .seal])
        #expect(try memfd.seals() == [.shrink, .grow, .write, .seal])
        #expect(SharedMemoryError.caught { try memfd.addSeals(.futureWrite) }?.code == .sealed)
        #expect(SharedMemoryError.caught { try memfd.addSeals([]) }?.code == .sealed)
        #expect(try memfd.seals().description == "seal,shrink,grow,write")
    }

    /// F_SEAL_FUTURE_WRITE: the existing writable mapping keeps working; new write access is refused.
    @Test func futureWriteSeal() throws {
        let memfd = try Self.make()
        let producer = try memfd.map(.shared, writable: true)
        try memfd.addSeals(.futureWrite)
        try producer.write(Array("still writable".utf8), at: 0)
        #expect(try memfd.read(at: 0, count: 14) == Array("still writable".utf8))
        #expect(SharedMemoryError.caught { try memfd.write([1], at: 0) }?.code == .sealed)
        #expect(SharedMemoryError.caught { _ = try memfd.map(.shared, writable: true) }?.code == .sealed)
        try producer.unmap()
    }

    /// The receiver's check: missing seals are refused; a regular file is not a memfd.
    @Test func receiverChecksSeals() throws {
        let memfd = try Self.make()
        try memfd.addSeals(.shrink)
        let refusal = SharedMemoryError.caught { try memfd.requireSeals([.shrink, .grow, .seal]) }
        #expect(refusal?.code == .permissionDenied)
        #expect(refusal?.description.contains("lacks seal,grow") == true, "\(String(describing: refusal))")
        try memfd.requireSeals(.shrink)

        for medium in Medium.allCases where medium.parent != nil {
            let directory = try ScratchDirectory(on: medium)
            let file = try MappedFile.create(at: directory.file("plain"), size: 10)
            let adopted = SharedMemoryError.caught { _ = try MemFD(adopting: file.descriptor!) }
            #expect(adopted?.code == .keyError, "\(medium): \(String(describing: adopted))")
        }
    }

    /// A child inherits the memfd (an inheritable copy at a number it is told) and sees contents and seals.
    @Test func childInheritsASealedMemFD() throws {
        let memfd = try Self.make()
        try memfd.write(Array("inherited hello".utf8), at: 0)
        try memfd.addSeals([.shrink, .grow, .write, .seal])
        let copy = try DescriptorPassing.inheritableCopy(of: memfd.descriptor!, atLeast: 40)
        #expect(fcntl(copy.rawValue, F_GETFD) & FD_CLOEXEC == 0)
        #expect(fcntl(memfd.descriptor!.rawValue, F_GETFD) & FD_CLOEXEC != 0, "the original stays close-on-exec")
        let child: ChildProcess
        do {
            defer { try? copy.close() }
            child = try FileSharingHelpers.helper(["memfd-info", "--fd", "\(copy.rawValue)"])
        }
        let info = try FileSharingHelpers.keyValues(child)
        #expect(info["seals"] == "seal,shrink,grow,write")
        #expect(info["size"] == "\(Self.size)")
        #expect(info["text"] == "inherited hello")
        #expect(info["write"] == "sealed" && info["shrink"] == "sealed" && info["grow"] == "sealed")
        #expect(info["map-shared-writable"] == "sealed")
        #expect(try child.wait().exitCode == 0, "\(child.standardError())")
    }

    /// An unrelated process receives the memfd over a Unix socket (SCM_RIGHTS) and checks the seals first.
    @Test func unrelatedProcessReceivesAMemFDOverASocket() throws {
        let directory = try ScratchDirectory()
        let socketPath = directory.file("handoff.sock")
        let receiver = try FileSharingHelpers.helper(["memfd-info", "--socket", socketPath, "--require", "shrink,grow,write,seal"])
        try FileSharingHelpers.expectLine(receiver, startingWith: "listening")
        let status = try FileManager.default.attributesOfItem(atPath: socketPath)
        #expect((status[.posixPermissions] as? Int) == 0o600, "the socket file is private")

        let memfd = try Self.make()
        try memfd.write(Array("over the socket".utf8), at: 0)
        try memfd.addSeals([.shrink, .grow, .write, .seal])
        let connection = try UnixSocket.connect(to: socketPath)
        try connection.send(descriptor: memfd.descriptor!, message: Array("frame 1".utf8))
        let info = try FileSharingHelpers.keyValues(receiver)
        #expect(info["message"] == "frame 1")
        #expect(info["peer-uid"] == "\(geteuid())")
        #expect(info["seals"] == "seal,shrink,grow,write")
        #expect(info["trusted"] == "yes")
        #expect(info["text"] == "over the socket")
        #expect(info["write"] == "sealed" && info["shrink"] == "sealed" && info["grow"] == "sealed")
        #expect(try receiver.wait().exitCode == 0, "\(receiver.standardError())")
        connection.close()
        #expect(directory.entries.isEmpty, "the listener removed its socket file: \(directory.entries)")
    }

    /// In one process: send and receive over a connected pair; the received descriptor is close-on-exec
    /// and names the same memory.
    @Test func sendAndReceiveInOneProcess() throws {
        let directory = try ScratchDirectory()
        let listener = try UnixSocket.listen(at: directory.file("s"))
        let client = try UnixSocket.connect(to: directory.file("s"))
        let server = try listener.accept()
        let memfd = try Self.make()
        try client.send(descriptor: memfd.descriptor!)
        let (received, message) = try server.receiveDescriptor()
        #expect(message == [0], "one filler byte when no message is given")
        #expect(fcntl(received.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        let other = try MemFD(adopting: received)
        try memfd.write([9, 8, 7], at: 0)
        #expect(try other.read(at: 0, count: 3) == [9, 8, 7])
        try client.send(descriptor: memfd.descriptor!)
        client.close()
        let (second, _) = try server.receiveDescriptor()
        try second.close()
        #expect(SharedMemoryError.caught { _ = try server.receiveDescriptor() }?.underlyingError == .connectionReset)
    }
}
