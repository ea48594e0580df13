import Foundation
import ScenarioKit
import Testing

@testable import Harness

@Suite struct LoaderTests {
    @Test func contractExamplesParse() throws {
        let one = try ScenarioLoader.load(file: Paths.fixtures + "/contract/example-1.yaml")
        #expect(one.count == 4, "a 2x2 matrix")
        #expect(one.map(\.testName).contains("counter[backend=systemv,impl=c]") || one.map(\.testName).contains("example-1[backend=systemv,impl=c]"))
        #expect(one[0].workers[0].count == 16)
        #expect(one[0].resources[0].backend == .systemv)
        #expect(one[2].resources[0].backend == .posix)
        #expect(one[0].expect.memory.first?.value == .u64(320000))
        let two = try ScenarioLoader.load(file: Paths.fixtures + "/contract/example-2.yaml")
        #expect(two.count == 1)
        #expect(two[0].workers.map(\.name) == ["holder", "next", "stranger"])
        #expect(two[0].workers[0].expect == .signal(9))
        #expect(two[0].workers[2].user == "nobody")
        #expect(two[0].resources[0].lock == .robustMutex)
    }

    @Test func catalogueIsValid() throws {
        let scenarios = try ScenarioLoader.files(at: Paths.packageRoot + "/scenarios").flatMap {
            try ScenarioLoader.load(file: $0, root: Paths.packageRoot + "/scenarios")
        }
        #expect(scenarios.count >= 10)
        #expect(Set(scenarios.map(\.identifier)).count == scenarios.count, "testcase names are unique")
        #expect(scenarios.contains { $0.workers.reduce(0) { $0 + $1.count } >= 256 })
    }

    /// Broken files: each is refused with the place and the reason.
    static let broken: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("bad YAML", "workers:\n  - name: a\n    steps: [attach: x\n", 4, 1, "invalid YAML"),
        ("unknown top key", "summery: typo\nworkers: []\n", 1, 1, "unknown key 'summery'"),
        ("unknown step", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - atach: s\n", 5, 9, "unknown key 'atach'"),
        ("wrong type", "resources:\n  s: {kind: segment, size: big}\nworkers:\n  - steps:\n      - attach: s\n", 2, 28, "size must be a size"),
        ("missing resource", "workers:\n  - steps:\n      - attach: nothere\n", 3, 17, "unknown resource 'nothere'"),
        ("bad duration", "timeout: 10 minutes\nworkers:\n  - steps:\n      - sleep: 1s\n", 1, 10, "timeout must be a duration"),
        ("unknown variable", "matrix:\n  backend: [posix]\nresources:\n  s: {kind: segment, backend: \"${backnd}\", size: 64}\nworkers:\n  - steps:\n      - attach: s\n", 4, 31, "unknown variable ${backnd}"),
        ("bad backend", "resources:\n  s: {kind: segment, backend: windows, size: 64}\nworkers:\n  - steps:\n      - attach: s\n", 2, 31, "unknown backend 'windows'"),
        ("unknown error name", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: s\n        expect-error: nope\n", 6, 23, "unknown error 'nope'"),
        ("bad signal", "workers:\n  - steps:\n      - crash: SIGNOPE\n", 3, 16, "unknown signal 'SIGNOPE'"),
        ("two steps in one item", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: s\n        detach: s\n", 5, 9, "one step per list item"),
        ("missing size", "resources:\n  s: {kind: segment}\nworkers:\n  - steps:\n      - attach: s\n", 2, 6, "needs size"),
        ("lock does not fit", "resources:\n  f: {kind: file, size: 32, lock: futex}\nworkers:\n  - steps:\n      - lock: f\n", 2, 25, "do not fit"),
        ("semaphore on a file", "resources:\n  f: {kind: file, size: 4096, lock: semaphore}\nworkers:\n  - steps:\n      - lock: f\n", 2, 37, "lock: semaphore is a segment's lock"),
        ("count out of range", "workers:\n  - count: 0\n    steps:\n      - sleep: 1ms\n", 2, 12, "count must be in 1...4096"),
        ("truncate a segment", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - truncate: {res: s, size: 1}\n", 5, 9, "truncate changes a file's size"),
        ("exec without command", "workers:\n  - impl: exec\n", 2, 5, "impl: exec needs command"),
        ("no workers", "summary: nothing\n", 1, 1, "needs workers"),
        ("environment names collide", "resources:\n  a-b: {kind: segment, size: 64}\n  a_b: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - attach: a-b\n", 2, 3, "both become SHM_HARNESS_A_B_*"),
        ("lock timeout not a duration", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - lock: {res: s, timeout: soon}\n", 5, 33, "timeout must be a duration"),
        ("lock timeout zero", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - lock: {res: s, timeout: 0s}\n", 5, 33, "a lock timeout must be longer than 0"),
        ("lock takes res and timeout", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - lock: {res: s, wait: 1s}\n", 5, 24, "unknown key 'wait'"),
        ("unknown outcome in a list", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - create: s\n        expect-error: [none, exists]\n", 6, 30, "unknown outcome 'exists'"),
        ("outcome listed twice", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - create: s\n        expect-error: [none, none]\n", 6, 30, "outcome 'none' is listed twice"),
        ("empty outcome list", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - create: s\n        expect-error: []\n", 6, 23, "accepts nothing"),
        ("none alone", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - create: s\n        expect-error: none\n", 6, 23, "none alone is the default"),
        ("bad counter name", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - create: s\n        count: a b\n", 6, 16, "a counter name is a plain word"),
        ("count on a repeat", "workers:\n  - steps:\n      - repeat: 2\n        count: c\n        steps:\n          - sleep: 1ms\n", 4, 9, "put it on a step inside the repeat"),
        ("count in setup", "resources:\n  s: {kind: segment, size: 64}\nsetup:\n  - create: s\n    count: c\nworkers:\n  - steps:\n      - sleep: 1ms\n", 4, 5, "setup runs in the runner and is not counted"),
        ("uncounted counter", "workers:\n  - steps:\n      - sleep: 1ms\n        count: naps\nexpect:\n  outcomes:\n    nap: { ok: 1 }\n", 7, 5, "no worker step counts 'nap'"),
        ("outcome never accepted", "workers:\n  - steps:\n      - sleep: 1ms\n        count: naps\nexpect:\n  outcomes:\n    naps: { ok: 1, busy: 0 }\n", 7, 5, "'naps' can never be busy"),
        ("none in counts", "workers:\n  - steps:\n      - sleep: 1ms\n        count: naps\nexpect:\n  outcomes:\n    naps: { none: 1 }\n", 7, 13, "a success is tallied as ok"),
        ("count bound", "workers:\n  - steps:\n      - sleep: 1ms\n        count: naps\nexpect:\n  outcomes:\n    naps: { ok: {min: 3, max: 1} }\n", 7, 17, "max 1 is less than min 3"),
        ("count bound key", "workers:\n  - steps:\n      - sleep: 1ms\n        count: naps\nexpect:\n  outcomes:\n    naps: { ok: {least: 3} }\n", 7, 18, "unknown key 'least'"),
        ("qt lock either way", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - impl: qt\n    steps:\n      - lock: {res: s, timeout: 1s}\n        expect-error: [none, lock-error]\n", 6, 9, "impl: qt cannot run a lock that may end either way"),
        ("hex odd", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - store: {res: s, hex: abc}\n", 5, 30, "even number of hex digits"),
    ]

    @Test(arguments: broken.indices)
    func brokenFilesNameThePlace(index: Int) throws {
        let (name, yaml, line, column, message) = Self.broken[index]
        try expectRefusal(name, yaml, line: line, column: column, message: message)
    }

    @Test func lockTakesATimeout() throws {
        let yaml = "timeout: 9s\nresources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n      - lock: {res: s, timeout: 250ms}\n      - lock: s\n"
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "t.yaml").first)
        let steps = scenario.workers[0].steps
        guard case .lock("s", let timeout?) = steps[0].action else { Issue.record("\(steps[0].action)"); return }
        #expect(timeout == .milliseconds(250))
        guard case .lock("s", nil) = steps[1].action else { Issue.record("\(steps[1].action)"); return }
        // The runner gives a lock without timeout the scenario's: no worker waits longer than the scenario runs.
        let filled = TestcaseRun.withLockTimeouts(steps, default: scenario.timeout)
        guard case .lock("s", .milliseconds(250)?) = filled[0].action, case .lock("s", .seconds(9)?) = filled[1].action else {
            Issue.record("\(filled.map { $0.action })")
            return
        }
    }

    @Test func everyProblemIsReported() throws {
        let yaml = "resources:\n  s: {kind: segment, size: big}\nworkers:\n  - steps:\n      - atach: s\n      - sleep: forever\n"
        do {
            _ = try ScenarioLoader.load(text: yaml, file: "many.yaml")
            Issue.record("loaded")
        } catch {
            #expect(error.errors.count == 3, "\(error)")
        }
    }

    @Test func matrixSubstitution() throws {
        let yaml = """
            matrix:
              backend: [systemv, posix]
              n: ["2", "3"]
            resources:
              s: {kind: segment, backend: "${backend}", key: "k-${n}", size: 64}
            workers:
              - name: w
                count: ${n}
                steps:
                  - attach: s
            """
        let scenarios = try ScenarioLoader.load(text: yaml, file: "m.yaml")
        #expect(scenarios.map(\.testName) == ["m[backend=systemv,n=2]", "m[backend=systemv,n=3]", "m[backend=posix,n=2]", "m[backend=posix,n=3]"])
        #expect(scenarios[3].workers[0].count == 3)
        #expect(scenarios[3].resources[0].key == "k-3")
        #expect(scenarios[2].resources[0].backend == .posix)
    }

    @Test func literalDollarBrace() throws {
        let yaml = "workers:\n  - impl: exec\n    command: [sh, -c, 'echo $${HOME}']\n"
        let scenarios = try ScenarioLoader.load(text: yaml, file: "d.yaml")
        #expect(scenarios[0].workers[0].command[2] == "echo ${HOME}")
    }

    /// Thousands of mutated files: the loader refuses or accepts them, and never crashes.
    @Test func fuzzedFilesNeverCrashTheLoader() throws {
        var seeds: [String] = []
        for file in try ScenarioLoader.files(at: Paths.packageRoot + "/scenarios") + [Paths.fixtures + "/contract/example-1.yaml"] {
            seeds.append(try String(contentsOfFile: file, encoding: .utf8))
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(" :-[]{}\n\t#&*!|>'\"%@`,?${}0123456789abcxyz")
        var accepted = 0
        for round in 0..<3000 {
            var chars = Array(seeds[round % seeds.count])
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                guard !chars.isEmpty else { break }
                let at = Int.random(in: 0..<chars.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: chars.remove(at: at)
                case 1: chars.insert(alphabet.randomElement(using: &generator)!, at: at)
                case 2: chars[at] = alphabet.randomElement(using: &generator)!
                default:
                    let end = min(chars.count, at + Int.random(in: 1...40, using: &generator))
                    chars.removeSubrange(at..<end)
                }
            }
            if (try? ScenarioLoader.load(text: String(chars), file: "fuzz.yaml")) != nil { accepted += 1 }
        }
        #expect(accepted < 3000, "some mutations must be refused")
    }
}
