import Foundation
import ScenarioKit
import Testing

@testable import Harness

#if canImport(Glibc)
import Glibc
#endif

/// The Qt peer (PySide6) the `impl: qt` tests need: the python the runner would use, if it can import Qt.
enum QtPeer {
    static let python: String? = {
        let named = ProcessInfo.processInfo.environment["SHM_HARNESS_QT_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let candidate = named ?? Paths.packageRoot + "/.venv-qt/bin/python"
        guard FileManager.default.isExecutableFile(atPath: candidate),
            let probe = try? Run.command([candidate, "-I", "-c", "import PySide6.QtCore"], timeout: 60), probe.exitCode == 0
        else { return nil }
        return candidate
    }()

    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// Runs when the peer is there, and in CI always: there a missing peer fails the test instead of skipping it.
    static var runs: Bool { python != nil || inCI }
    static let skipReason: Comment = "impl: qt needs PySide6 (run scripts/qt-venv.sh or set SHM_HARNESS_QT_PYTHON)"

    static func require() throws -> String {
        try #require(python, "CI=true but the Qt peer is missing: \(skipReason)")
    }
}

@Suite(.serialized) struct QtWorkerTests {
    func run(_ arguments: [String], environment prefix: String = "") throws -> (Run, String) {
        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let result = try Run.command([
            "/bin/sh", "-c", "\(prefix) exec \"$0\" run --leak-check own --junit \"$@\"", Paths.harness, report,
        ] + arguments)
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        if FileManager.default.fileExists(atPath: report) {
            let problems = try schemaProblems(report)
            #expect(problems == nil, "the report must validate: \(problems ?? "")")
        }
        return (result, xml)
    }

    /// The binary carries the worker (an installed binary has no checkout): the embedded copy is the file.
    @Test func embeddedScriptIsQtWorkerPy() throws {
        let file = try String(contentsOfFile: Paths.packageRoot + "/QtWorker/qt_worker.py", encoding: .utf8)
        #expect(QtWorkerScript.source + "\n" == file, "run scripts/embed-qt-worker.sh after editing QtWorker/qt_worker.py")
    }

    /// Swift, C and Qt workers on one counter under the segment's Qt lock: all three exclude each other (the
    /// exclusion scenario loses an update every time without the lock: its negative control).
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func mixedCounterRunsWithRealQt() throws {
        _ = try QtPeer.require()
        let (result, xml) = try run([
            Paths.packageRoot + "/scenarios/lock/mixed-counter.yaml", Paths.packageRoot + "/scenarios/lock/mixed-exclusion.yaml",
            "--filter", "*systemv*",
        ])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(xml.contains("<testcase classname=\"lock\" name=\"mixed-counter[backend=systemv]\""))
        #expect(xml.contains("<testcase classname=\"lock\" name=\"mixed-exclusion[backend=systemv,holder=qt,waiter=c]\""))
        #expect(!xml.contains("<failure") && !xml.contains("<error") && !xml.contains("<skipped"), "\(xml)")
        #expect(xml.contains("--- qt/1 (exit 0)"), "the Qt workers ran")
        #expect(xml.contains("[[PROPERTY|lock_count=6000]]"), "every worker reports its locks")
    }

    /// The negative control: a Qt worker whose check is wrong fails, naming the worker, its step and the values.
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func wrongExpectationInAQtWorkerFails() throws {
        _ = try QtPeer.require()
        let (result, xml) = try run([Paths.fixtures + "/failing/qt-wrong-expectation.yaml"])
        #expect(result.exitCode == 1)
        #expect(xml.contains("<failure message=\"worker qt/0, step at \(Paths.fixtures)/failing/qt-wrong-expectation.yaml:15 (check): check-mismatch: at offset 0 of seg: want u64 6, got u64 5\""), "\(xml)")
    }

    /// The differential scenarios pass with Qt's behaviour and say so in the report.
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func differentialScenariosExpectQtsBehaviourAndNameIt() throws {
        _ = try QtPeer.require()
        let (result, xml) = try run([Paths.packageRoot + "/scenarios/qt"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(!xml.contains("<failure") && !xml.contains("<error") && !xml.contains("<skipped"), "\(xml)")
        #expect(xml.contains("[[PROPERTY|divergence=Qt: a create() that fails with AlreadyExists resets the lock semaphore"))
        #expect(xml.contains("[[PROPERTY|divergence=worker qt-user: its segment outlives its last detach]]"))
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))?.filter { $0.contains("neverunlinked") } ?? []
        #expect(left.isEmpty, "the runner removes the run's own POSIX leftovers: \(left)")
    }

    /// Without the peer, qt testcases are skipped with the reason (never passed); in strict mode (CI) the
    /// missing peer is an error, as a missing C worker is.
    @Test func missingPeerIsASkipWithTheReasonAndAnErrorWhenStrict() throws {
        let reason = "impl: qt needs PySide6 (run scripts/qt-venv.sh or set SHM_HARNESS_QT_PYTHON): SHM_HARNESS_QT_PYTHON=/nonexistent/python is not an executable file"
        let (result, xml) = try run(
            [Paths.packageRoot + "/scenarios/lock/mixed-counter.yaml", "--filter", "*systemv*", "--no-strict"],
            environment: "SHM_HARNESS_QT_PYTHON=/nonexistent/python")
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(xml.contains("<skipped message=\"\(reason)\""), "\(xml)")
        let (strict, strictXML) = try run(
            [Paths.packageRoot + "/scenarios/lock/mixed-counter.yaml", "--filter", "*systemv*", "--strict"],
            environment: "SHM_HARNESS_QT_PYTHON=/nonexistent/python")
        #expect(strict.exitCode == 1, "\(strict.stderr)")
        #expect(strictXML.contains("<error") && strictXML.contains(reason), "\(strictXML)")
        #expect(!strictXML.contains("<skipped"))
    }

    /// A broken plan is exit 2, naming the plan line; the worker never guesses.
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func brokenPlanIsExit2NamingTheLine() throws {
        let python = try QtPeer.require()
        let script = temporaryPath("qt_worker.py")
        let plan = temporaryPath("broken.plan")
        defer { unlink(script); unlink(plan) }
        try (QtWorkerScript.source + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        let cases: [(String, String)] = [
            ("step 3 lock res=seg bogus=1", "plan line 5: unknown field 'bogus'"),
            ("step 3 add res=seg offset=x", "plan line 5: offset=x is not a number"),
            ("step 3 attach res=nothere", "plan line 5: unknown resource 'nothere'"),
            ("repeat 3 times=2 body=2\nstep 4 unlock res=seg", "plan line 5: a repeat body is cut short"),
        ]
        for (line, message) in cases {
            let text = "shm-harness-plan 1\nfile x.yaml\nworker q 0 1\nresource seg kind=segment key=posix%3A%2Fx size=64 lock=semaphore lock-offset=0\n\(line)\nend\n"
            try text.write(toFile: plan, atomically: true, encoding: .utf8)
            let run = try Run.command([python, "-I", script, plan])
            #expect(run.exitCode == 2, "\(line): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(line): \(run.stderr)")
        }
    }

    /// A lock with `timeout-ns` (Qt's lock() has none): while another object holds the lock, a step that expects
    /// lock-error gets it after the timeout and the worker goes on; a timed lock that gets the lock goes on as
    /// usual. Unexpected, the timeout ends the worker (its watchdog SIGKILLs it) with the step's failure as result.
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func timedLockEndsWithLockErrorAndTheWorkerGoesOn() throws {
        let python = try QtPeer.require()
        let script = temporaryPath("qt_worker.py")
        let plan = temporaryPath("timed.plan")
        let name = "shm-harness-test-\(getpid())-timed"
        defer {
            unlink(script)
            unlink(plan)
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [] where entry.contains(name) {
                unlink("/dev/shm/" + entry)  // Qt never unlinks a POSIX segment
            }
        }
        try (QtWorkerScript.source + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        func run(expectError: Bool) throws -> Run {
            let key = "posix%3A%2F" + name + (expectError ? "-a" : "-b")  // Qt leaves each one behind
            let text = """
                shm-harness-plan 1
                file t.yaml
                worker q 0 1
                resource a kind=segment key=\(key) size=64 lock=semaphore lock-offset=0
                resource b kind=segment key=\(key) size=64 lock=semaphore lock-offset=0
                step 1 create res=a
                step 2 attach res=b
                step 3 lock res=a
                step 4 lock res=b timeout-ns=300000000\(expectError ? " expect-error=lock-error" : "")
                step 5 unlock res=a
                step 6 lock res=b timeout-ns=5000000000
                step 7 add res=b offset=0 value=3
                step 8 unlock res=b
                step 9 check res=a offset=0 u64=3
                step 10 detach res=b
                step 11 detach res=a
                end

                """
            try text.write(toFile: plan, atomically: true, encoding: .utf8)
            return try Run.command([python, "-I", script, plan], timeout: 60)
        }
        let expected = try run(expectError: true)
        #expect(expected.exitCode == 0, "\(expected.stdout) \(expected.stderr)")
        #expect(expected.stdout.hasSuffix("\"ok\":true,\"ops\":11}\n"), "all 11 steps ran: \(expected.stdout)")
        #expect(expected.stdout.contains("\"lockCount\":2"))
        let unexpected = try run(expectError: false)
        #expect(SpawnedProcess.signal(unexpected.status) == SIGKILL, "\(unexpected.stdout) \(unexpected.stderr)")
        #expect(unexpected.stdout.hasPrefix("result {"), "one result line, from the watchdog: \(unexpected.stdout)")
        #expect(unexpected.stdout.contains("\"error\":\"lock-error\",\"line\":4"), "\(unexpected.stdout)")
        #expect(unexpected.stdout.contains("Qt's lock() did not return within 300ms"), "\(unexpected.stdout)")
    }

    /// Every plan the runner makes for the catalogue's qt workers is one the Qt worker reads (its parser is
    /// stricter than the Swift one: an unknown field is a broken plan).
    @Test(.enabled(if: QtPeer.runs, QtPeer.skipReason))
    func catalogueQtPlansParse() throws {
        let python = try QtPeer.require()
        let script = temporaryPath("qt_worker.py")
        let planPath = temporaryPath("check.plan")
        defer { unlink(script); unlink(planPath) }
        try (QtWorkerScript.source + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        var checked = 0
        for file in try ScenarioLoader.files(at: Paths.packageRoot + "/scenarios") {
            for scenario in try ScenarioLoader.load(file: file) {
                for worker in scenario.workers where worker.impl == .qt {
                    let resources = scenario.resources.map {
                        Plan.Resource(id: $0.id, kind: $0.kind, key: "posix:/x y?legacyKey=a&b", size: $0.size, lock: $0.lock,
                                      lockOffset: $0.lockOffset, path: nil, fd: nil, isPrivate: $0.isPrivate)
                    }
                    let plan = Plan(file: file, group: worker.name, index: 0, count: worker.count, resources: resources, steps: worker.steps)
                    try plan.encoded().write(toFile: planPath, atomically: true, encoding: .utf8)
                    let run = try Run.command([python, "-I", script, "--check", planPath])
                    #expect(run.exitCode == 0, "\(scenario.identifier) \(worker.name): \(run.stderr)")
                    checked += 1
                }
            }
        }
        #expect(checked >= 8, "the catalogue has qt workers")
    }

    /// What Qt has no operation for is refused when the file is validated, with the reason and the place.
    static let refused: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("try-lock", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - impl: qt\n    steps:\n      - try-lock: s\n", 6, 9, "impl: qt cannot run try-lock: QSharedMemory has no try-lock"),
        ("atomic-add", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - impl: qt\n    steps:\n      - atomic-add: {res: s, offset: 0, value: 1}\n", 6, 9, "impl: qt cannot run atomic-add: Qt has no atomic add"),
        ("touch-all in a repeat", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - impl: qt\n    steps:\n      - repeat: 2\n        steps:\n          - touch-all: s\n", 8, 13, "impl: qt cannot run touch-all"),
        ("truncate", "resources:\n  f: {kind: file, size: 4096}\nworkers:\n  - impl: qt\n    steps:\n      - truncate: {res: f, size: 1}\n", 6, 9, "impl: qt cannot run truncate"),
        ("seal", "resources:\n  m: {kind: memfd, size: 4096}\nworkers:\n  - impl: qt\n    steps:\n      - seal: {res: m, seals: [write]}\n", 6, 9, "impl: qt cannot run seal"),
        ("a file", "resources:\n  f: {kind: file, size: 4096}\nworkers:\n  - impl: qt\n    steps:\n      - attach: f\n", 6, 9, "impl: qt cannot use 'f': Qt has no file resources"),
        ("a memfd", "resources:\n  m: {kind: memfd, size: 4096}\nworkers:\n  - impl: qt\n    steps:\n      - attach: m\n", 6, 9, "impl: qt cannot use 'm': Qt has no memfd resources"),
        ("futex lock", "resources:\n  s: {kind: segment, size: 4096, lock: futex}\nworkers:\n  - impl: qt\n    steps:\n      - lock: s\n", 6, 9, "impl: qt cannot use 's' with lock: futex"),
        ("robust mutex", "resources:\n  s: {kind: segment, size: 4096, lock: robust-mutex}\nworkers:\n  - impl: qt\n    steps:\n      - attach: s\n", 6, 9, "with lock: robust-mutex"),
        ("lockfile", "resources:\n  s: {kind: segment, size: 4096, lock: lockfile}\nworkers:\n  - impl: qt\n    steps:\n      - attach: s\n", 6, 9, "with lock: lockfile"),
        ("through the matrix", "matrix:\n  impl: [swift, qt]\nresources:\n  s: {kind: segment, size: 64}\nworkers:\n  - impl: ${impl}\n    steps:\n      - try-lock: s\n", 8, 9, "impl: qt cannot run try-lock"),
        ("a step the Qt worker lacks", "resources:\n  m: {kind: memfd, size: 4096}\nworkers:\n  - impl: qt\n    steps:\n      - seal: {res: m, seals: [write]}\n", 6, 9, "impl: qt cannot run seal"),
        ("empty divergence", "divergence: \"\"\nworkers:\n  - steps:\n      - sleep: 1ms\n", 1, 13, "divergence: says how the behaviour differs"),
    ]

    @Test(arguments: refused.indices)
    func unsupportedStepsAreRefusedAtValidation(index: Int) throws {
        let (name, yaml, line, column, message) = Self.refused[index]
        try expectRefusal(name, yaml, line: line, column: column, message: message, file: "qt.yaml")
    }

    /// The control: the same steps are fine for the Swift worker, and Qt's own steps are fine for qt.
    @Test func qtStepsAndOtherImplsAreAccepted() throws {
        let yaml = """
            divergence: "a note"
            matrix:
              impl: [swift, c, qt]
            resources:
              s: {kind: segment, size: 64}
            workers:
              - impl: ${impl}
                divergence: "per worker"
                steps:
                  - create: s
                  - attach: {res: s, mode: ro}
                    expect-error: already-exists
                  - lock: s
                  - add: {res: s, offset: 0, value: 1}
                  - load: {res: s, offset: 0}
                  - store-loaded: {res: s, offset: 0, plus: 1}
                  - compare: {res: s, offset: 0, with: 16}
                  - store: {res: s, offset: 8, hex: "00ff"}
                  - check: {res: s, offset: 8, hex: "00ff"}
                  - unlock: s
                  - fill: {res: s, byte: 1}
                  - check-fill: {res: s, byte: 1}
                  - repeat: {for: 10ms}
                    steps:
                      - sleep: 1ms
                  - barrier: b
                  - detach: s
                  - crash: SIGKILL
            """
        let scenarios = try ScenarioLoader.load(text: yaml, file: "ok.yaml")
        #expect(scenarios.map(\.workers[0].impl) == [.swift, .c, .qt])
        #expect(scenarios[2].divergences == ["a note", "worker worker1: per worker"])
        let swiftOnly = "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - try-lock: s\n      - atomic-add: {res: s}\n"
        #expect(try ScenarioLoader.load(text: swiftOnly, file: "s.yaml").count == 1)
    }
}
