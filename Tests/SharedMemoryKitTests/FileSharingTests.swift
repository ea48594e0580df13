import Foundation
import SystemPackage
import SharedMemoryKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Mapped files: sharing between processes, private mappings, temporary files, the safety rules, and where
/// the files live.
@Suite struct FileSharingTests {
    /// Two processes map one file shared, on tmpfs and on a disk-backed directory: each sees the other's writes.
    @Test(arguments: Medium.allCases)
    func sharedMappingIsSeenByAnotherProcess(medium: Medium) throws {
        try #require(medium.parent != nil, "no \(medium) directory here (statfs says every candidate is memory)")
        let directory = try ScratchDirectory(on: medium)
        let type = try FileSystemType.of(path: directory.path)
        #expect(type.isMemoryBacked == (medium == .tmpfs), "\(directory.path) is \(type)")
        let file = try MappedFile.create(at: directory.file("board"), size: 8192)
        let mapping = try file.map()
        try mapping.write(Array("from the test".utf8), at: 4096)

        let child = try FileSharingHelpers.helper(["map-write", "--file", directory.file("board"), "--text", "from the child", "--at", "100"])
        try FileSharingHelpers.expectLine(child, startingWith: "written")
        #expect(try mapping.read(at: 100, count: 14) == Array("from the child".utf8))
        try mapping.write(Array("test again".utf8), at: 100)
        child.send("")
        #expect(try FileSharingHelpers.expectLine(child, startingWith: "sees=") == "sees=test againhild")
        #expect(try child.wait().exitCode == 0, "\(child.standardError())")

        try mapping.sync()
        try mapping.unmap()
        file.close()
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: directory.file("board")))
        #expect(Array(onDisk[100..<114]) == Array("test againhild".utf8))
        #expect(Array(onDisk[4096..<4109]) == Array("from the test".utf8))
    }

    /// A private (copy-on-write) mapping's writes are seen neither by another process nor in the file.
    @Test(arguments: Medium.allCases)
    func privateMappingWritesStayPrivate(medium: Medium) throws {
        try #require(medium.parent != nil, "no \(medium) directory here")
        let directory = try ScratchDirectory(on: medium)
        let file = try MappedFile.create(at: directory.file("cow"), size: 4096)
        let mapping = try file.map()
        let child = try FileSharingHelpers.helper(["map-write", "--private", "--file", directory.file("cow"), "--text", "secret", "--at", "8"])
        try FileSharingHelpers.expectLine(child, startingWith: "written")
        #expect(try mapping.read(at: 8, count: 6) == [UInt8](repeating: 0, count: 6))
        child.send("")
        #expect(try FileSharingHelpers.expectLine(child, startingWith: "sees=") == "sees=secret", "the writer sees its own write")
        #expect(try child.wait().exitCode == 0)
        let contents = try Data(contentsOf: URL(fileURLWithPath: directory.file("cow")))
        #expect(contents.count == 4096 && contents.allSatisfy { $0 == 0 }, "the file is untouched")
    }

    /// A temporary file is unlinked at once by default (a crash leaves nothing), or named until close.
    @Test func temporaryFilesLeaveNothingBehind() throws {
        let directory = try ScratchDirectory()
        let anonymous = try MappedFile.temporary(in: directory.path, size: 4096)
        #expect(anonymous.path == nil)
        #expect(directory.entries.isEmpty, "unlinked right after open: \(directory.entries)")
        let mapping = try anonymous.map()
        try mapping.write([1, 2, 3], at: 0)
        #expect(try anonymous.size() == 4096)

        let named = try MappedFile.temporary(in: directory.path, prefix: "kept", size: 100, keepName: true)
        let path = try #require(named.path)
        #expect(directory.entries.count == 1 && path.hasPrefix(directory.path + "/kept."))
        let status = try FileManager.default.attributesOfItem(atPath: path)
        #expect((status[.posixPermissions] as? Int) == 0o600)
        named.close()
        #expect(directory.entries.isEmpty, "removed at close")
        anonymous.close()
        try mapping.unmap()
    }

    /// O_EXCL on create (also over a symlink), O_NOFOLLOW on open.
    @Test func existingFilesAndSymlinksAreRefused() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("data")
        let first = try MappedFile.create(at: path, size: 64)
        #expect(SharedMemoryError.caught { _ = try MappedFile.create(at: path, size: 64) }?.code == .alreadyExists)
        #expect(symlink(path, directory.file("link")) == 0)
        let overLink = SharedMemoryError.caught { _ = try MappedFile.create(at: directory.file("link"), size: 64) }
        #expect(overLink?.code == .alreadyExists)
        let throughLink = SharedMemoryError.caught { _ = try MappedFile.open(at: directory.file("link")) }
        #expect(throughLink?.code == .permissionDenied)
        #expect(throughLink?.description.contains("symbolic link") == true, "\(String(describing: throughLink))")
        first.close()
    }

    /// A file another user owns is refused unless the caller opts in.
    @Test(.enabled(if: TestEnvironment.isRoot, "needs root to give a file to another user"))
    func anotherUsersFileIsRefused() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("foreign")
        try MappedFile.create(at: path, size: 64).close()
        #expect(chown(path, 65534, 65534) == 0)
        let refusal = SharedMemoryError.caught { _ = try MappedFile.open(at: path) }
        #expect(refusal?.code == .permissionDenied)
        #expect(refusal?.description.contains("owned by uid 65534") == true)
        let opted = try MappedFile.open(at: path, allowForeignOwner: true)
        #expect(try opted.size() == 64)
    }

    /// Sizes are checked before every mapping: nothing past the end, nothing empty, page-aligned offsets.
    @Test func sizesAreCheckedBeforeMapping() throws {
        let directory = try ScratchDirectory()
        let file = try MappedFile.create(at: directory.file("small"), size: 100)
        #expect(SharedMemoryError.caught { _ = try file.map(length: 8192) }?.code == .invalidSize)
        #expect(SharedMemoryError.caught { _ = try file.map(offset: 100) }?.code == .invalidSize)
        #expect(SharedMemoryError.caught { _ = try file.map(offset: 10, length: 10) }?.code == .invalidSize)
        try file.resize(to: 0)
        #expect(SharedMemoryError.caught { _ = try file.map() }?.code == .invalidSize)
        let mapping = try { () throws(SharedMemoryError) in try file.resize(to: 4096); return try file.map() }()
        #expect(SharedMemoryError.caught { _ = try mapping.read(at: 4000, count: 200) }?.code == .invalidSize)
        #expect(mapping.count == 4096)
    }

    /// statfs: /dev/shm and a memfd are tmpfs; the root file system is not.
    @Test func fileSystemDetection() throws {
        #expect(try FileSystemType.of(path: "/dev/shm").isTmpfs)
        let root = try FileSystemType.of(path: "/")
        #expect(!root.isTmpfs, "/ is \(root)")
        let memfd = try MemFD.create(name: "fs-probe")
        #expect(try FileSystemType.of(descriptor: memfd.descriptor!) == .tmpfs)
        #expect(FileSystemType.tmpfs.magic == 0x0102_1994)
    }

    /// The sharing directory: XDG_RUNTIME_DIR when private to us, else /dev/shm (with a warning), and a
    /// disk-backed choice is flagged.
    @Test func sharingDirectoryChoice() throws {
        let runtime = try ScratchDirectory()
        let chosen = try SharingDirectory.choose(environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(chosen.source == .runtimeDirectory && chosen.path == runtime.path)
        #expect(chosen.warnings.isEmpty, "\(chosen.warnings)")
        #expect(chosen.reason.contains("tmpfs") && chosen.reason.contains("private"), "\(chosen.reason)")

        let fallback = try SharingDirectory.choose(environment: [:])
        #expect(fallback.source == .devShm)
        #expect(fallback.reason.hasPrefix("XDG_RUNTIME_DIR is not set; chose /dev/shm"), "\(fallback.reason)")
        #expect(fallback.warnings == [.worldWritable(path: "/dev/shm", sticky: true)])

        #expect(chmod(runtime.path, 0o755) == 0)
        let open = try SharingDirectory.choose(environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(open.source == .devShm)
        #expect(open.reason.contains("is not private to this user"), "\(open.reason)")

        if let disk = Medium.disk.parent {
            let explicit = try SharingDirectory(path: disk)
            #expect(explicit.warnings.contains { if case .diskBacked = $0 { true } else { false } }, "\(explicit.warnings)")
        }
        #expect(SharedMemoryError.caught { _ = try SharingDirectory(path: "/nonexistent/dir") }?.code == .notFound)
    }
}
