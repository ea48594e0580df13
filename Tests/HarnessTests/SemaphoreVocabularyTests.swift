import Foundation
import ScenarioKit
import Testing

@testable import Harness

/// The semaphore resource kind and its steps: what the loader refuses at FILE:LINE:COLUMN, what impl: qt is
/// refused, how the plan carries them (both ways), and the runner's default acquire timeout.
@Suite struct SemaphoreVocabularyTests {
    static let head = "resources:\n  s: {kind: semaphore, initial: 1}\n  m: {kind: segment, size: 64}\nworkers:\n  - steps:\n"

    static let refused: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("size on a semaphore", "resources:\n  s: {kind: semaphore, size: 64}\nworkers:\n  - steps:\n      - attach: s\n", 2, 30, "'size' does not apply to a semaphore resource"),
        ("lock on a semaphore", "resources:\n  s: {kind: semaphore, lock: futex}\nworkers:\n  - steps:\n      - attach: s\n", 2, 30, "'lock' does not apply to a semaphore resource"),
        ("initial on a segment", "resources:\n  m: {kind: segment, size: 64, initial: 2}\nworkers:\n  - steps:\n      - attach: m\n", 2, 41, "'initial' does not apply to a segment resource"),
        ("initial past SEMVMX", "resources:\n  s: {kind: semaphore, initial: 40000}\nworkers:\n  - steps:\n      - attach: s\n", 2, 33, "initial must be in 0...32767"),
        ("negative initial", "resources:\n  s: {kind: semaphore, backend: posix, initial: -1}\nworkers:\n  - steps:\n      - attach: s\n", 2, 49, "initial must be in 0..."),
        ("empty key", "resources:\n  s: {kind: semaphore, key: ''}\nworkers:\n  - steps:\n      - attach: s\n", 2, 29, "a semaphore key must not be empty"),
        ("acquire on a segment", head + "      - acquire: m\n", 6, 9, "acquire works on a semaphore resource; 'm' is a segment"),
        ("lock on a semaphore step", head + "      - lock: s\n", 6, 9, "lock needs memory or a lock; 's' is a semaphore"),
        ("store on a semaphore", head + "      - store: {res: s, u64: 1}\n", 6, 9, "store needs memory or a lock; 's' is a semaphore"),
        ("read-only attach", head + "      - attach: {res: s, mode: ro}\n", 6, 9, "a semaphore has no read-only mode"),
        ("create with a size", head + "      - create: {res: s, size: 64}\n", 6, 9, "a semaphore has no size"),
        ("acquire of 0", head + "      - acquire: {res: s, n: 0}\n", 6, 30, "n must be in 1...32767"),
        ("release of -1", head + "      - release: {res: s, n: -1}\n", 6, 30, "n must be in 0...32767"),
        ("acquire: unknown key", head + "      - acquire: {res: s, wait: 1s}\n", 6, 27, "unknown key 'wait' in acquire"),
        ("release takes no timeout", head + "      - release: {res: s, timeout: 1s}\n", 6, 27, "unknown key 'timeout' in release"),
        ("timed acquire of 2", head + "      - acquire: {res: s, n: 2, timeout: 1s}\n", 6, 42, "timeout: applies to an acquire of one unit"),
        ("zero timeout", head + "      - acquire: {res: s, timeout: 0s}\n", 6, 36, "an acquire timeout must be longer than 0"),
        ("check-value without value", head + "      - check-value: {res: s}\n", 6, 22, "check-value needs value:"),
        ("check-value: bad value", head + "      - check-value: {res: s, value: many}\n", 6, 38, "value must be an integer, not 'many'"),
        ("check-at-most without max", head + "      - check-at-most: {res: m, offset: 0}\n", 6, 24, "check-at-most needs max:"),
        ("check-at-most: bad max", head + "      - check-at-most: {res: m, max: -1}\n", 6, 38, "max must be an unsigned 64-bit integer, not '-1'"),
        ("try-acquire: unknown resource", head + "      - try-acquire: t\n", 6, 22, "unknown resource 't'"),
        ("a segment's lock semaphore", "resources:\n  m: {kind: segment, size: 64, key: k}\n  s: {kind: semaphore, key: k}\nworkers:\n  - steps:\n      - attach: s\n", 3, 3, "semaphore 's' has the key 'k' of segment 'm'"),
        ("qt try-acquire", "resources:\n  s: {kind: semaphore}\nworkers:\n  - impl: qt\n    steps:\n      - try-acquire: s\n", 6, 9, "impl: qt cannot run try-acquire: QSystemSemaphore has no try-acquire"),
        ("qt acquire either way", "resources:\n  s: {kind: semaphore}\nworkers:\n  - impl: qt\n    steps:\n      - acquire: {res: s, timeout: 1s}\n        expect-error: [none, lock-error]\n", 6, 9, "impl: qt cannot run an acquire that may end either way"),
        ("qt check-value", "resources:\n  s: {kind: semaphore}\nworkers:\n  - impl: qt\n    steps:\n      - check-value: {res: s, value: 1}\n", 6, 9, "impl: qt cannot run check-value: QSystemSemaphore cannot read its count"),
    ]

    @Test(arguments: refused.indices)
    func loaderRefusesAtTheirPlace(index: Int) throws {
        let (name, yaml, line, column, message) = Self.refused[index]
        try expectRefusal(name, yaml, line: line, column: column, message: message, file: "sem.yaml")
    }

    @Test func qtRunsAcquireReleaseAndCheckAtMost() throws {
        let yaml = "resources:\n  s: {kind: semaphore, backend: posix, initial: 2}\n  m: {kind: segment, size: 64}\nworkers:\n  - impl: qt\n    steps:\n      - create: s\n      - attach: m\n      - acquire: {res: s, n: 2}\n      - release: {res: s, n: 2}\n      - check-at-most: {res: m, offset: 8, max: 3}\n      - detach: s\n"
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "qt.yaml").first)
        #expect(scenario.resource("s")?.initial == 2)
        #expect(scenario.resource("s")?.backend == .posix)
    }

    @Test func stepsAndResourcesRoundTripThroughAPlan() throws {
        let yaml = "timeout: 7s\n" + Self.head + "      - create: s\n      - acquire: {res: s, n: 3}\n      - acquire: {res: s, timeout: 250ms}\n      - release: {res: s, n: 0}\n      - try-acquire: s\n        expect-error: busy\n      - check-value: {res: s, value: 4}\n      - check-at-most: {res: m, offset: 16, max: 18446744073709551615}\n"
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "rt.yaml").first)
        let environment = try RunEnvironment.current(jobs: 1, machineLeakCheck: false)
        defer { RunEnvironment.removeTree(environment.workDirectory) }
        let run = TestcaseRun(scenario: scenario, environment: environment, token: "tok", journal: nil)
        let resources = run.planResources(planDirectory: "/nonexistent")
        let semaphore = try #require(resources.first { $0.id == "s" })
        // QSystemSemaphore's derivation of the unique legacy key (qipc_systemsem_), with the initial count.
        #expect(semaphore.key?.contains("qipc_systemsem_") == true, "\(semaphore.key ?? "nil")")
        #expect(semaphore.key?.hasSuffix("?legacyKey=s-tok") == true, "\(semaphore.key ?? "nil")")
        #expect(semaphore.initial == 1)
        let steps = TestcaseRun.withLockTimeouts(scenario.workers[0].steps, default: scenario.timeout)
        let plan = Plan(file: "rt.yaml", group: "w", index: 0, count: 1, resources: resources, steps: steps)
        let text = plan.encoded()
        #expect(text.contains(" initial=1\n"))
        #expect(text.contains("step 8 acquire res=s n=3 timeout-ns=7000000000\n"), "the scenario's timeout fills in: \(text)")
        #expect(text.contains("step 9 acquire res=s n=1 timeout-ns=250000000\n"))
        #expect(text.contains("step 10 release res=s n=0\n"))
        #expect(text.contains("step 11 try-acquire res=s expect-error=busy\n"))
        #expect(text.contains("step 13 check-value res=s value=4\n"))
        #expect(text.contains("step 14 check-at-most res=m offset=16 max=18446744073709551615\n"))
        let parsed = try Plan.parse(text)
        #expect(parsed.encoded() == text)
        #expect(parsed.resources == resources)
    }

    /// Hand-written plans: every bad semaphore field is refused naming the plan line.
    static let brokenPlans: [(text: String, message: String)] = [
        ("resource s kind=semaphore lock=semaphore initial=-1", "initial=-1 is not a number"),
        ("step 1 acquire res=s n=0", "n=0 is not a number in 1...32767"),
        ("step 1 acquire res=s timeout-ns=0", "timeout-ns=0 is not a positive number"),
        ("step 1 release res=s n=-1", "n=-1 is not a number in 0...32767"),
        ("step 1 release res=s timeout-ns=5", "unknown field 'timeout-ns'"),
        ("step 1 try-acquire res=s n=1", "unknown field 'n'"),
        ("step 1 check-value res=s", "check-value needs value="),
        ("step 1 check-value res=s value=-1", "value=-1 is not a number"),
        ("step 1 check-at-most res=s offset=0", "check-at-most needs max="),
        ("step 1 check-at-most res=s max=-3", "max=-3 is not an unsigned 64-bit integer"),
    ]

    @Test(arguments: brokenPlans.indices)
    func brokenPlansNameTheLine(index: Int) {
        let (line, message) = Self.brokenPlans[index]
        do {
            _ = try Plan.parse("shm-harness-plan 1\n" + line + "\nend\n")
            Issue.record("accepted: \(line)")
        } catch {
            #expect(error.line == 2 && error.message.contains(message), "\(line): \(error)")
        }
    }
}
