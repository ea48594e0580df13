import Foundation
import Testing

@testable import Harness
import ScenarioKit
import JUnit
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
        // The fixture with a marker unique to this test: its exec worker is found by it, and only it.
        let marker = "shm-harness-hung-marker-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fixture = temporaryPath("hung-worker.yaml")
        let text = try String(contentsOfFile: Paths.fixtures + "/failing/hung-worker.yaml", encoding: .utf8)
        #expect(text.contains("shm-harness-hung-marker"))
        try text.replacingOccurrences(of: "shm-harness-hung-marker", with: marker).write(toFile: fixture, atomically: true, encoding: .utf8)
        defer { unlink(fixture) }
        let start = Date()
        let (result, xml) = try run([fixture])
        #expect(result.exitCode == 1)
        #expect(xml.contains("<error message=\"timeout: the scenario ran longer than 1s"))
        #expect(Date().timeIntervalSince(start) < 20)
        let survivors = Processes.withMarker(marker)
        #expect(survivors.isEmpty, "processes left: \(survivors.map { "\($0) \(Processes.commandLine($0) ?? "")" })")
    }

    @Test func missingBarrierParticipantReleasesTheOthers() throws {
        let (result, xml) = try run([Paths.fixtures + "/failing/barrier-missing.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("barrier &apos;meet&apos;: worker quitter/0 ended"))
    }

    @Test(.enabled(if: geteuid() == 0, "namespaces need root"))
    func isolatedLeakLeavesNothingOnTheHost() throws {
        let (result, xml) = try run(["--isolate", Paths.fixtures + "/failing/leaky.yaml"])
        // This run's object only (named after its token, which the report gives): other runs may leak theirs.
        let name = try #require(Self.leakedName(in: xml), "the report names the leaked object")
        let leaked = FileManager.default.fileExists(atPath: "/dev/shm/\(name)")
        if leaked { unlink("/dev/shm/\(name)") }
        #expect(!leaked, "the testcase's /dev/shm was its own tmpfs")
        #expect(xml.contains("harness.isolation\" value=\"namespaces"))
        #expect(result.exitCode == 1, "the leak is still reported: it happened inside the testcase")
        #expect(xml.contains("left behind: /dev/shm/shm-harness-test-leak-"))
    }

    @Test func withoutIsolationTheLeakCheckNamesTheObject() throws {
        let (result, xml) = try run(["--no-isolate", Paths.fixtures + "/failing/leaky.yaml"])
        if let name = Self.leakedName(in: xml) { unlink("/dev/shm/\(name)") }  // this run's leak, nobody else's
        #expect(result.exitCode == 1)
        #expect(xml.contains("harness.isolation\" value=\"off"))
        #expect(xml.contains("leaks: none: left behind: /dev/shm/shm-harness-test-leak-"))
    }

    /// The object the leaky fixture made, as the report names it: `shm-harness-test-leak-<run token>`.
    static func leakedName(in xml: String) -> String? {
        guard let range = xml.range(of: "shm-harness-test-leak-[0-9a-z-]+", options: .regularExpression) else { return nil }
        return String(xml[range])
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
        // the runner ran with this test process's own runtime folder (Run.harness): its journal is there
        let journal = JournalDirectory.runsDirectory(xdgRuntimeDir: Paths.runtimeDirectory) + "/" + token + RunJournal.fileExtension
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

    /// A build piece that is missing (here: SHM_HARNESS_C_WORKER names no program) is an <error> in strict mode
    /// (exit 1) and a <skipped> with its reason without it; never a pass.
    @Test func missingWorkerIsAnErrorInStrictModeAndASkipWithout() throws {
        let scenario = Paths.packageRoot + "/scenarios/lock/counter.yaml"
        let missing = "/nonexistent-\(getpid())/shmh-worker"
        for (flags, ci) in [(["--strict"], "false"), ([], "true"), (["--no-strict"], "true"), ([], "false")] {
            let report = temporaryPath("junit.xml")
            defer { unlink(report) }
            let result = try Run.command(
                ["/usr/bin/env", "SHM_HARNESS_C_WORKER=\(missing)", "CI=\(ci)", Paths.harness, "run", "--leak-check", "own", "--junit", report, "--filter", "*impl=c*"]
                    + flags + [scenario])
            let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
            let strict = flags == ["--strict"] || (flags.isEmpty && ci == "true")
            let label = "\(flags) CI=\(ci)"
            #expect(xml.contains("counter[backend=posix,impl=c]"), "\(label): \(result.stderr)")
            #expect(!xml.contains("<testcase classname=\"lock\" name=\"counter[backend=posix,impl=c]\" time=\"0.000\"/>"), "\(label): never passed")
            if strict {
                #expect(result.exitCode == 1, "\(label): \(result.stderr)")
                #expect(xml.contains("<error message=\"impl: c needs the C worker shmh-worker: SHM_HARNESS_C_WORKER names \(missing)"), "\(label)")
                #expect(xml.contains("type=\"missing-worker\""))
                #expect(!xml.contains("<skipped"))
            } else {
                #expect(result.exitCode == 0, "\(label): \(result.stderr)")
                #expect(xml.contains("<skipped message=\"impl: c needs the C worker shmh-worker: SHM_HARNESS_C_WORKER names \(missing)"), "\(label)")
                #expect(!xml.contains("<error"))
            }
        }
    }

    /// What the machine lacks stays a skip in strict mode (with its reason); a missing build piece does not.
    @Test func machineRequirementsStaySkipsInStrictMode() throws {
        let fixture = temporaryPath("needs-root.yaml")
        try "summary: needs root\nrequires: [root]\nworkers:\n  - impl: c\n    steps:\n      - sleep: 1ms\n".write(toFile: fixture, atomically: true, encoding: .utf8)
        defer { unlink(fixture) }
        let scenario = try #require(try ScenarioLoader.load(file: fixture).first)
        let work = temporaryPath("work")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let noRoot = Requirements(met: [.root: false], reasons: [.root: "requires root (running as uid 1000)"], cWorkerPath: "/bin/true", cWorkerProblem: nil)
        var environment = RunEnvironment(harnessPath: Paths.harness, cWorkerPath: "/bin/true", workDirectory: work, requirements: noRoot, checkGlobalLeaks: false)
        environment.strict = true
        #expect(TestcaseRun(scenario: scenario, environment: environment, token: "t", journal: nil).run().status == .skipped(message: "requires root (running as uid 1000)"))
        // the same testcase without its C worker, on a machine that has everything: an error in strict mode only
        let noWorker = Requirements(met: [.root: true], reasons: [:], cWorkerPath: nil, cWorkerProblem: "not built")
        environment.requirements = noWorker
        let strictResult = TestcaseRun(scenario: scenario, environment: environment, token: "t", journal: nil).run()
        #expect(strictResult.status.word == "errored", "\(strictResult.status)")
        environment.strict = false
        #expect(TestcaseRun(scenario: scenario, environment: environment, token: "t", journal: nil).run().status == .skipped(message: "impl: c needs the C worker shmh-worker: not built"))
    }

    /// A run that selects nothing exits 2 and says why; an empty shard of a non-empty selection is fine.
    @Test func selectingNothingExits2() throws {
        let basic = Paths.packageRoot + "/scenarios/basic"
        let filter = try Run.harness(["run", "--junit", temporaryPath("junit.xml"), "--filter", "no-such-testcase*", basic])
        #expect(filter.exitCode == 2)
        #expect(filter.stderr.contains("no testcase selected: --filter 'no-such-testcase*' matched none of the"), "\(filter.stderr)")
        let tag = try Run.harness(["run", "--junit", temporaryPath("junit.xml"), "--tag", "no-such-tag", basic])
        #expect(tag.exitCode == 2)
        #expect(tag.stderr.contains("--tag no-such-tag matched none"), "\(tag.stderr)")
        let empty = temporaryPath("empty")
        mkdir(empty, 0o700)
        defer { rmdir(empty) }
        let folder = try Run.harness(["run", "--junit", temporaryPath("junit.xml"), empty])
        #expect(folder.exitCode == 2)
        #expect(folder.stderr.contains("no scenario file"), "\(folder.stderr)")
        // validate and list of nothing are no passes either (a mistyped CI path)
        for command in ["validate", "list"] {
            let nothing = try Run.harness([command, empty])
            #expect(nothing.exitCode == 2, "\(command): \(nothing.stdout)")
            #expect(nothing.stderr.contains("no scenario file"), "\(command): \(nothing.stderr)")
            let something = try Run.harness([command, basic])
            #expect(something.exitCode == 0, "\(command) of a real folder: \(something.stderr)")
        }
        let listNoTag = try Run.harness(["list", "--tag", "no-such-tag", basic])
        #expect(listNoTag.exitCode == 2 && listNoTag.stderr.contains("--tag no-such-tag matched none"), "\(listNoTag.stderr)")
        let shardOfNothing = try Run.harness(["run", "--junit", temporaryPath("junit.xml"), "--filter", "no-such-testcase*", "--shard", "1/2", basic])
        #expect(shardOfNothing.exitCode == 2, "a shard of an empty selection is still nothing")

        // basic has 2 testcases: over 64 shards most are empty, which is fine (exit 0, said so)
        let scenarios = try Runner.load([basic])
        let emptyShard = try #require((1...64).first { k in Runner.select(scenarios, tags: [], filters: [], shard: (k, 64)).isEmpty })
        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let shard = try Run.harness(["run", "--leak-check", "own", "--junit", report, "--shard", "\(emptyShard)/64", basic])
        #expect(shard.exitCode == 0, "\(shard.stderr)")
        #expect(shard.stderr.contains("shard \(emptyShard)/64 is empty"), "\(shard.stderr)")
        #expect(FileManager.default.fileExists(atPath: report), "an empty shard still writes its (empty) report")
        // ...also when asked to run until a failure (it once divided by the number of testcases: zero)
        let untilFailure = try Run.harness(["run", "--leak-check", "own", "--junit", report, "--shard", "\(emptyShard)/64", "--until-failure", basic])
        #expect(untilFailure.exitCode == 0, "\(untilFailure.stderr)")
    }

    /// `help scenarios` prints the scenario format reference (docs/scenario-format.md, built in), not the usage.
    @Test func helpScenariosPrintsTheReference() throws {
        let doc = try String(contentsOfFile: Paths.packageRoot + "/docs/scenario-format.md", encoding: .utf8)
        let top = try Run.harness(["--help"])
        #expect(top.stdout.contains("SUBCOMMANDS"))
        for arguments in [["help", "scenarios"], ["scenarios", "--help"], ["scenarios", "-h"], ["scenarios"]] {
            let result = try Run.harness(arguments)
            #expect(result.exitCode == 0, "\(arguments)")
            #expect(!result.stdout.contains("SUBCOMMANDS"), "\(arguments): the reference, not the top-level help")
            #expect(result.stdout == doc, "\(arguments): the doc itself (run scripts/embed-scenario-doc.sh after editing it)")
        }
    }
}
