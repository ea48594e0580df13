import Foundation
import ScenarioKit
import Testing

@testable import Harness

#if canImport(Glibc)
import Glibc
#endif

/// `limits:` (per-testcase kernel and descriptor limits) and `u64-less-than`: loading, refusals at
/// FILE:LINE:COLUMN, the skip when not isolated, the report's properties, and negative controls showing that
/// each limit's value is what the catalogue's limit scenarios see.
@Suite(.serialized) struct TestcaseLimitsTests {
    @Test func limitsLoad() throws {
        let yaml = """
            limits: {shmmax: 1MiB, shmmni: 8, sem: [250, 32000, 32, 128], dev-shm-size: 1MiB, nofile: 32}
            workers:
              - steps:
                  - sleep: 1ms
            """
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "l.yaml").first)
        let limits = try #require(scenario.limits)
        #expect(limits == TestcaseLimits(shmmax: 1 << 20, shmmni: 8, sem: [250, 32000, 32, 128], devShmSize: 1 << 20, nofile: 32))
        #expect(limits.sysctls.map { "\($0.name)=\($0.value)" } == ["kernel.shmmax=1048576", "kernel.shmmni=8", "kernel.sem=250 32000 32 128"])
        #expect(limits.properties.map { "\($0.name)=\($0.value)" } == [
            "limit.kernel.shmmax=1048576", "limit.kernel.shmmni=8", "limit.kernel.sem=250 32000 32 128", "limit.dev_shm_size=1048576",
            "limit.nofile=32",
        ])
        let none = try #require(try ScenarioLoader.load(text: "workers:\n  - steps:\n      - sleep: 1ms\n", file: "n.yaml").first)
        #expect(none.limits == nil)
    }

    static let broken: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("unknown limit", "limits: {shmmax: 1MiB, shmal: 4}\nworkers:\n  - steps:\n      - sleep: 1ms\n", 1, 24, "unknown key 'shmal' in limits"),
        ("empty limits", "limits: {}\nworkers:\n  - steps:\n      - sleep: 1ms\n", 1, 9, "limits: names at least one of"),
        ("not a mapping", "limits: 4\nworkers:\n  - steps:\n      - sleep: 1ms\n", 1, 9, "limits must be a mapping"),
        ("shmmax not a size", "limits:\n  shmmax: lots\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 11, "limits.shmmax must be a size"),
        ("shmmax zero", "limits:\n  shmmax: 0\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 11, "limits.shmmax must be at least 1 byte"),
        ("shmmni too many", "limits:\n  shmmni: 40000\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 11, "limits.shmmni must be in 1...32768"),
        ("sem three numbers", "limits:\n  sem: [250, 32000, 32]\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 8, "limits.sem is a list of four numbers"),
        ("sem semmni zero", "limits:\n  sem: [250, 32000, 32, 0]\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 25, "limits.sem's SEMMNI must be in 1...32768"),
        ("dev-shm-size zero", "limits:\n  dev-shm-size: 0\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 17, "tmpfs takes 0 as no limit"),
        ("nofile two", "limits:\n  nofile: 2\nworkers:\n  - steps:\n      - sleep: 1ms\n", 2, 11, "limits.nofile must be in 3...1048576"),
        ("less-than with u64", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: s\nexpect:\n  memory:\n    - {res: s, u64: 1, u64-less-than: 2}\n", 8, 7, "give one of u64:, hex: or u64-less-than:"),
        ("less-than zero", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: s\nexpect:\n  memory:\n    - {res: s, u64-less-than: 0}\n", 8, 31, "u64-less-than must be an unsigned 64-bit integer above 0"),
        ("less-than not a number", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: s\nexpect:\n  memory:\n    - {res: s, u64-less-than: few}\n", 8, 31, "u64-less-than must be an unsigned 64-bit integer"),
    ]

    @Test(arguments: broken.indices)
    func brokenLimitsNameThePlace(index: Int) throws {
        let (name, yaml, line, column, message) = Self.broken[index]
        try expectRefusal(name, yaml, line: line, column: column, message: message)
    }

    /// Outside the testcase's own namespaces nothing is written: the machine's limits and /dev/shm are not the
    /// run's to change.
    @Test func notIsolatedIsUnavailable() {
        let limits = TestcaseLimits(shmmax: 4096, devShmSize: 4096, nofile: 8)
        guard case .unavailable(let reason) = TestcaseRun.applyLimits(limits, isolated: false) else {
            Issue.record("applied outside a namespace")
            return
        }
        #expect(reason.contains("private IPC namespace"))
    }

    /// A limits testcase run without isolation is a skip with the reason, also in strict mode (the machine
    /// lacks what it needs, as with `requires`); with isolation it runs and reports the limits it had.
    @Test(.enabled(if: geteuid() == 0, "isolation needs root"))
    func skippedWithoutIsolationAndReportedWithIt() throws {
        let scenario = Paths.packageRoot + "/scenarios/limits/shmmax-size-beyond.yaml"
        let report = temporaryPath("limits.xml")
        defer { unlink(report) }
        let skipped = try Run.harness(["run", "--strict", "--no-isolate", "--filter", "*impl=c*", "--junit", report, scenario])
        #expect(skipped.exitCode == 0, "\(skipped.stderr)")
        let skippedXML = try String(contentsOfFile: report, encoding: .utf8)
        #expect(skippedXML.contains("<skipped message=\"limits: needs the testcase&apos;s private IPC namespace") || skippedXML.contains("<skipped message=\"limits: needs the testcase's private IPC namespace"), "\(skippedXML)")

        let ran = try Run.harness(["run", "--strict", "--filter", "*impl=c*", "--junit", report, scenario])
        #expect(ran.exitCode == 0, "\(ran.stderr)")
        let ranXML = try String(contentsOfFile: report, encoding: .utf8)
        #expect(ranXML.contains("[[PROPERTY|limit.kernel.shmmax=65536]]"), "\(ranXML)")
        #expect(!ranXML.contains("<skipped"))
        if let problems = try schemaProblems(report) { Issue.record("schema: \(problems)") }
    }

    /// Negative controls: each limit scenario with its limit raised (and the lost-update control with the lock
    /// put back) must fail, for the Swift and the C worker, at the step or the check that depends on it.
    static let controls: [NegativeControlTests.Control] = [
        .init(fixture: "limits-shmmax-raised", message: [step("limits-shmmax-raised", "creator/0", 15, "create", "invalid-size")]),
        .init(fixture: "limits-shmmni-raised", message: [step("limits-shmmni-raised", "creator/0", 19, "create", "out-of-resources")]),
        .init(fixture: "limits-sem-raised", message: [step("limits-sem-raised", "creator/0", 19, "create", "out-of-resources")]),
        .init(fixture: "limits-dev-shm-raised", message: [step("limits-dev-shm-raised", "creator/0", 15, "create", "out-of-resources")]),
        .init(fixture: "limits-nofile-raised", message: [step("limits-nofile-raised", "opener/0", 18, "create", "out-of-resources")]),
        .init(
            fixture: "lost-update-locked",
            message: [
                NegativeControlTests.literal(
                    "expect memory seg@0 (\(NegativeControlTests.file("lost-update-locked")):25:7): want u64 below 2, got u64 2")
            ]),
    ]

    static func step(_ fixture: String, _ worker: String, _ line: Int, _ kind: String, _ error: String) -> String {
        NegativeControlTests.step(fixture, worker: worker, line: line, step: kind, "unexpected-success: expected \(error), but the step succeeded")
    }

    @Test(.enabled(if: geteuid() == 0, "limits need isolation, which needs root"), arguments: controls)
    func raisedLimitFails(_ control: NegativeControlTests.Control) throws {
        try NegativeControlTests().protectionRemovedFailsWithTheExpectedMessage(control)
    }
}
