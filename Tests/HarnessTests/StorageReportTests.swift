import ScenarioKit
import SharedMemoryKit
import Testing

@testable import Harness

/// The report names each file resource's folder and file system (`res.ID.dir`, `res.ID.fstype`), read with
/// statfs: /dev/shm is tmpfs, a disk-backed temp folder is not.
@Suite struct StorageReportTests {
    static func file(_ id: String, in directory: String) -> Plan.Resource {
        Plan.Resource(id: id, kind: .file, key: nil, size: 4096, lock: .futex, lockOffset: 0, path: directory + "/shm-harness-\(id)-x", fd: nil, isPrivate: false)
    }

    @Test func fileResourcesNameTheirFileSystem() throws {
        let disk = try #require(FileLocation.directory(for: "disk"), "a disk-backed temp folder")
        let memfd = Plan.Resource(id: "m", kind: .memfd, key: nil, size: 4096, lock: .futex, lockOffset: 0, path: "/x/m", fd: nil, isPrivate: false)
        let properties = TestcaseRun.storageProperties([Self.file("a", in: "/dev/shm"), Self.file("b", in: disk), memfd])
        let byName = Dictionary(properties.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["res.a.dir"] == "/dev/shm")
        #expect(byName["res.a.fstype"] == "tmpfs")
        #expect(byName["res.b.dir"] == disk)
        let diskType = try #require(byName["res.b.fstype"])
        let expected = try FileSystemType.of(path: disk).name
        #expect(diskType != "tmpfs" && diskType != "unknown" && diskType == expected)
        #expect(properties.count == 4, "only file resources: \(properties)")
    }
}
