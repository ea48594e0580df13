import Foundation
import Testing

@testable import Harness
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// The runner end to end, through the built binary, as CI runs it.
@Suite(.serialized) struct RunnerTests {
    func run(_ arguments: [String]) throws -> (Run, String) {
        let report = temporaryPath("junit.xml")
        // Other suites make IPC objects in parallel: compare the run's own objects only.
        let result = try Run.harness(["run", "--leak-check", "own", "--junit", report] + arguments)
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        if FileManager.default.fileExists(atPath: report) {
            let problems = try schemaProblems(report)
            #expect(problems == nil, "the report must validate: \(problems ?? "")")
        }
        unlink(report)
        return (result, xml)
    }

    @Test func passingScenarioExits0() throws {
        let before = IPCSnapshot.take()
        let (result, xml) = try run([Paths.packageRoot + "/scenarios/basic/create-attach.yaml"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(xml.contains("<testcase classname=\"basic\" name=\"create-attach[backend=systemv]\""))
        #expect(!xml.contains("<failure") && !xml.contains("<error"))
        // Other suites run in parallel: look at this scenario's objects (its key's letters) only.
        #expect(IPCSnapshot.take().added(since: before).filter { $0.contains("createattach") }.isEmpty)
    }

    @Test func wrongExpectationExits1WithAFailure() throws {
        let (result, xml) = try run([Paths.fixtures + "/failing/wrong-expectation.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("<failure"))
        #expect(xml.contains("worker adder/"), "the failure names the worker")
        #expect(xml.contains("wrong-expectation.yaml:13 (check)"), "and the step")
        #expect(xml.contains("want u64 99"), "and the expectation")
        #expect(xml.contains("expect memory seg@0"), "the memory expectation is named too")
    }

    @Test func hungWorkerIsAnErrorAtTheTimeoutAndNothingSurvives() throws {
        let start = Date()
        let (result, xml) = try run([Paths.fixtures + "/failing/hung-worker.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("<error message=\"timeout: the scenario ran longer than 1s"))
        #expect(Date().timeIntervalSince(start) < 20)
        let survivors = try Run.command(["/bin/sh", "-c", "pgrep -f shm-harness-hung-[m]arker || true"])
        #expect(survivors.stdout.isEmpty, "processes left: \(survivors.stdout)")
    }

    @Test func missingBarrierParticipantReleasesTheOthers() throws {
        let (result, xml) = try run([Paths.fixtures + "/failing/barrier-missing.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("barrier &apos;meet&apos;: worker quitter/0 ended"))
    }

    @Test(.enabled(if: geteuid() == 0, "namespaces need root"))
    func isolatedLeakLeavesNothingOnTheHost() throws {
        let (result, xml) = try run(["--isolate", Paths.fixtures + "/failing/leaky.yaml"])
        let leaked = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))?.filter { $0.hasPrefix("shm-harness-test-leak-") } ?? []
        for name in leaked { unlink("/dev/shm/\(name)") }
        #expect(leaked.isEmpty, "the testcase's /dev/shm was its own tmpfs")
        #expect(xml.contains("harness.isolation\" value=\"namespaces"))
        #expect(result.exitCode == 1, "the leak is still reported: it happened inside the testcase")
        #expect(xml.contains("left behind: /dev/shm/shm-harness-test-leak-"))
    }

    @Test func withoutIsolationTheLeakCheckNamesTheObject() throws {
        let (result, xml) = try run(["--no-isolate", Paths.fixtures + "/failing/leaky.yaml"])
        let leaked = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))?.filter { $0.hasPrefix("shm-harness-test-leak-") } ?? []
        for name in leaked { unlink("/dev/shm/\(name)") }
        #expect(result.exitCode == 1)
        #expect(xml.contains("harness.isolation\" value=\"off"))
        #expect(xml.contains("leaks: none: left behind: /dev/shm/shm-harness-test-leak-"))
    }

    @Test(.enabled(if: geteuid() == 0, "namespaces need root"))
    func parallelIsolatedTestcases() throws {
        let (result, xml) = try run(["--isolate", "--jobs", "3", Paths.packageRoot + "/scenarios/basic", Paths.packageRoot + "/scenarios/lock"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(!xml.contains("<failure") && !xml.contains("<error"))
    }

    // MARK: issue 10, items 3 and 6: faults the runner and its workers must survive

    /// Another process ftruncates a POSIX segment's /dev/shm file: the Swift worker's check, the C worker's add
    /// and the runner's own expect-memory read are bus-error, the runner writes its report and exits 1, and
    /// nothing is left (segment, semaphore, run folder, journal).
    @Test(arguments: [false, true])
    func truncatedPOSIXSegmentIsBusErrorNotACrash(isolated: Bool) throws {
        if isolated && geteuid() != 0 { return }
        let fixture = Paths.fixtures + "/faults/truncated-segment.yaml"
        let (result, xml) = try run([isolated ? "--isolate" : "--no-isolate", fixture])
        #expect(result.exitCode == 1, "exit \(result.status): \(result.stderr)")
        #expect(xml.contains("<failure"), "a failure, with a report")
        #expect(xml.contains("worker swift-reader/0, step at ") && xml.contains("truncated-segment.yaml:24 (check): bus-error"))
        #expect(xml.contains("(add): bus-error"), "the C worker's add is guarded")
        #expect(xml.contains("expect memory seg@8192") && xml.contains("it was shrunk): bus-error"), "the runner's own read is guarded")
        #expect(!result.stderr.contains("stays for the next run"), "nothing left, so no journal left: \(result.stderr)")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.contains("shrunk") }
        #expect(left.isEmpty, "left: \(left)")
    }

    /// A dead POSIX lock holder: the lock step's timeout ends the wait with lock-error, and the last user (the
    /// Swift or the C worker) still removes the segment and its semaphore at once.
    @Test func deadPOSIXHolderLockTimesOutAndTheLastUserCleansUp() throws {
        let start = Date()
        let (result, xml) = try run(["--no-isolate", Paths.packageRoot + "/scenarios/crash/posix-holder-dies.yaml"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(xml.contains("name=\"posix-holder-dies[impl=swift]\"") && xml.contains("name=\"posix-holder-dies[impl=c]\""))
        #expect(!xml.contains("<failure") && !xml.contains("<error") && !xml.contains("<skipped"))
        #expect(Date().timeIntervalSince(start) < 25, "no 30 s lock waits")
    }

    /// A worker hung on a lock that a dead process keeps: the timeout names the worker, the file:line and the
    /// step, isolated or not, and the teardown does not wait for that lock (no 2 x 30 s).
    @Test(arguments: [false, true])
    func timeoutNamesTheHungWorkerAndItsStep(isolated: Bool) throws {
        if isolated && geteuid() != 0 { return }
        let start = Date()
        let (result, xml) = try run([isolated ? "--isolate" : "--no-isolate", Paths.fixtures + "/faults/hung-lock.yaml"])
        let seconds = Date().timeIntervalSince(start)
        #expect(result.exitCode == 1)
        #expect(xml.contains("timeout: the scenario ran longer than 2s; killed 1 worker(s): waiter/0 at "), "\(xml)")
        #expect(xml.contains("hung-lock.yaml:21 (lock)"), "the step it hung at")
        #expect(xml.contains("--- waiter/0 (signal SIGKILL)"), "and its output")
        #expect(seconds < 20, "the teardown took no lock waits: \(seconds) s")
        #expect(!result.stderr.contains("stays for the next run"), "\(result.stderr)")
    }

    /// The journal goes only when nothing it names is left: an object the run could not remove keeps it (for
    /// the next run or clean --run), and clean then removes both.
    @Test func journalStaysWhileSomethingItNamesIsLeft() throws {
        let (result, xml) = try run(["--no-isolate", Paths.fixtures + "/faults/leaves-journaled-object.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("left behind: /dev/shm/qipc_sharedmemory_journaled"))
        let said = result.stderr.split(separator: "\n").first { $0.contains("shm-harness clean --run ") }
        let token = said.flatMap { $0.components(separatedBy: "clean --run ").last?.filter(\.isHexDigit) } ?? ""
        let journal = JournalDirectory.path(forToken: token)
        #expect(!token.isEmpty && FileManager.default.fileExists(atPath: journal), "the journal stays: \(result.stderr)")
        let clean = try Run.harness(["clean", "--run", token])
        #expect(clean.exitCode == 0, "\(clean.stderr)")
        #expect(!FileManager.default.fileExists(atPath: journal))
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.contains("journaled") }
        #expect(left.isEmpty, "clean removed it: \(left)")
    }

    @Test func hugeOffsetsAreInvalidSizeNotACrash() throws {
        let (result, xml) = try run(["--no-isolate", Paths.fixtures + "/edge/huge-offset.yaml"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(!xml.contains("<failure") && !xml.contains("<error"))
    }

    @Test func storm256Completes() throws {
        let (result, xml) = try run([Paths.packageRoot + "/scenarios/stress/attach-storm.yaml", "--filter", "*posix*"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(xml.contains("[[PROPERTY|workers=256]]"))
    }

    @Test func unusableInputExits2BeforeRunningAnything() throws {
        let bad = temporaryPath("bad.yaml")
        try "workers:\n  - steps:\n      - atach: x\n".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { unlink(bad) }
        let (result, _) = try run([bad, Paths.packageRoot + "/scenarios/basic"])
        #expect(result.exitCode == 2)
        #expect(result.stderr.contains("\(bad):3:9: unknown key 'atach'"))
        #expect(!result.stderr.contains("running"), "nothing ran")
        let flag = try Run.harness(["run", "--jobs", "0"])
        #expect(flag.exitCode == 2)
        let validate = try Run.harness(["validate", bad])
        #expect(validate.exitCode == 2)
        #expect(validate.stderr.contains(":3:9:"))
    }

    @Test func unmetRequirementIsSkippedWithTheReason() throws {
        // From a folder without CHarness/build and without SHM_HARNESS_C_WORKER, impl: c has no worker.
        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let scenario = Paths.packageRoot + "/scenarios/lock/counter.yaml"
        let result = try Run.command([
            "/bin/sh", "-c", "cd / && unset SHM_HARNESS_C_WORKER && exec \"$0\" run --leak-check own --junit \"$1\" --filter '*impl=c*' \"$2\"",
            Paths.harness, report, scenario,
        ])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        #expect(xml.contains("<skipped message=\"impl: c needs the C worker"))
        #expect(!xml.contains("<testcase classname=\"lock\" name=\"counter[backend=posix,impl=c]\" time=\"0.000\"/>"), "skipped, not passed")
    }
}
