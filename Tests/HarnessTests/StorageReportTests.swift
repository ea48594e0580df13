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

    /// `attach: {res, mode: private}`: files only (FILE:LINE:COLUMN otherwise), written to the plan as mode=private.
    @Test func attachPrivateIsForFiles() throws {
        let yaml = "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: {res: s, mode: private}\n"
        do {
            _ = try ScenarioLoader.load(text: yaml, file: "p.yaml")
            Issue.record("mode: private on a segment was accepted")
        } catch {
            #expect(error.errors.map(\.description).contains("p.yaml:5:9: mode: private maps a file copy-on-write; 's' is a segment"), "\(error)")
        }
        let good = "resources:\n  f: {kind: file, size: 4096}\nworkers:\n  - impl: c\n    steps:\n      - attach: {res: f, mode: private}\n"
        let scenario = try #require(try ScenarioLoader.load(text: good, file: "p.yaml").first)
        guard case .attachPrivate("f") = scenario.workers[0].steps[0].action else { Issue.record("\(scenario.workers[0].steps[0])"); return }
        let plan = Plan(file: "p.yaml", group: "w", index: 0, count: 1, resources: [Self.file("f", in: "/dev/shm")], steps: scenario.workers[0].steps)
        #expect(plan.encoded().contains("\nstep 6 attach res=f mode=private\n"))
        guard case .attachPrivate("f") = try Plan.parse(plan.encoded()).steps[0].action else { Issue.record("round trip"); return }
        #expect(throws: Plan.ParseError.self) { try Plan.parse("shm-harness-plan 1\nstep 1 attach res=f mode=shared\nend\n") }
    }

    /// `sync` (file or memfd) and `check-file` (file): refused elsewhere at FILE:LINE:COLUMN, round-trip through the plan.
    @Test func syncAndCheckFile() throws {
        for (step, message) in [
            ("sync: s", "sync works on a file or memfd resource; 's' is a segment"),
            ("check-file: {res: s, offset: 0, u64: 1}", "check-file works on a file resource; 's' is a segment"),
            ("check-file: {res: s, offset: 0}", "give exactly one of u64: or hex:"),
        ] {
            let yaml = "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - \(step)\n"
            do {
                _ = try ScenarioLoader.load(text: yaml, file: "s.yaml")
                Issue.record("\(step) was accepted")
            } catch {
                #expect(error.errors.contains { $0.description.hasPrefix("s.yaml:5:") && $0.message == message }, "\(step): \(error)")
            }
        }
        let good = "resources:\n  f: {kind: file, size: 4096}\nworkers:\n  - impl: c\n    steps:\n      - sync: f\n      - check-file: {res: f, offset: 8, hex: \"0a0b\"}\n"
        let scenario = try #require(try ScenarioLoader.load(text: good, file: "s.yaml").first)
        let plan = Plan(file: "s.yaml", group: "w", index: 0, count: 1, resources: [Self.file("f", in: "/dev/shm")], steps: scenario.workers[0].steps)
        let text = plan.encoded()
        #expect(text.contains("\nstep 6 sync res=f\n") && text.contains("\nstep 7 check-file res=f offset=8 hex=0a0b\n"), "\(text)")
        let back = try Plan.parse(text)
        guard case .sync("f") = back.steps[0].action, case .checkFile("f", 8, .bytes([10, 11])) = back.steps[1].action else {
            Issue.record("round trip: \(back.steps)")
            return
        }
    }
}
