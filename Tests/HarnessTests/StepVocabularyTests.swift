import Foundation
import ScenarioKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The split read-modify-write (`load`, `store-loaded`), `compare`, and strict plans: what the loader refuses at
/// FILE:LINE:COLUMN, and what the plan decoder refuses naming the plan line when a plan is written by hand.
@Suite struct StepVocabularyTests {
    static let head = "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - steps:\n"

    /// Bad steps and fields, each refused by the loader at its place before any plan is written.
    static let refused: [(name: String, steps: String, line: Int, column: Int, message: String)] = [
        ("store-loaded without load", "      - store-loaded: {res: s, offset: 0, plus: 1}\n", 5, 9, "this worker has no load before it"),
        ("store-loaded before its load", "      - repeat: 2\n        steps:\n          - store-loaded: {res: s}\n      - load: {res: s}\n", 7, 13, "no load before it"),
        ("load: unknown field", "      - load: {res: s, offset: 0, plus: 1}\n", 5, 35, "unknown key 'plus' in load"),
        ("store-loaded: bad plus", "      - load: {res: s}\n      - store-loaded: {res: s, plus: one}\n", 6, 38, "plus must be an integer, not 'one'"),
        ("load: negative offset", "      - load: {res: s, offset: -8}\n", 5, 32, "offset must be in 0..."),
        ("compare without with", "      - compare: {res: s, offset: 0}\n", 5, 18, "compare needs with:"),
        ("compare: bad with", "      - compare: {res: s, offset: 0, with: eight}\n", 5, 44, "with must be an integer, not 'eight'"),
        ("compare: unknown resource", "      - compare: {res: t, with: 8}\n", 5, 24, "unknown resource 't'"),
        // the same refusals the plan decoder makes, made first by the loader
        ("bad value", "      - add: {res: s, value: one}\n", 5, 30, "value must be an integer, not 'one'"),
        ("bad signal", "      - crash: NINE\n", 5, 16, "unknown signal 'NINE'"),
        ("bad hex digit", "      - store: {res: s, hex: 0g}\n", 5, 30, "hex must be an even number of hex digits, not '0g'"),
        ("unknown seal", "      - seal: {res: s, seals: [shrink, melt]}\n", 5, 40, "unknown seal 'melt'"),
        ("unknown field", "      - add: {res: s, value: 1, colour: red}\n", 5, 33, "unknown key 'colour' in add"),
        ("bad byte", "      - fill: {res: s, byte: 256}\n", 5, 30, "byte must be in 0...255"),
    ]

    @Test(arguments: refused.indices)
    func loaderRefusesAtTheirPlace(index: Int) throws {
        let (name, steps, line, column, message) = Self.refused[index]
        try expectRefusal(name, Self.head + steps, line: line, column: column, message: message, file: "steps.yaml")
    }

    @Test func setupTakesNoRegisterSteps() throws {
        let yaml = "resources:\n  s: {kind: segment, size: 64}\nsetup:\n  - create: s\n  - load: {res: s}\nworkers:\n  - steps:\n      - attach: s\n"
        #expect(throws: ScenarioErrors.self) { try ScenarioLoader.load(text: yaml, file: "setup.yaml") }
    }

    @Test func stepsRoundTripThroughAPlan() throws {
        let yaml = Self.head + "      - load: {res: s, offset: 8}\n      - store-loaded: {res: s, offset: 16, plus: -3}\n      - compare: {res: s, offset: 8, with: 16}\n"
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "rt.yaml").first)
        let plan = Plan(file: "rt.yaml", group: "w", index: 0, count: 1, resources: [], steps: scenario.workers[0].steps)
        let text = plan.encoded()
        #expect(text.contains("step 5 load res=s offset=8\n"))
        #expect(text.contains("step 6 store-loaded res=s offset=16 plus=-3\n"))
        #expect(text.contains("step 7 compare res=s offset=8 with=16\n"))
        #expect(try Plan.parse(text).encoded() == text)
    }

    /// A plan written by hand (or by a buggy runner): every bad field is refused naming the plan line, never
    /// read as a default (a bad value was once 1, a bad signal 9; bad hex digits and unknown seals were dropped).
    static let brokenPlans: [(text: String, line: Int, message: String)] = [
        ("step 1 add res=r value=one", 2, "value=one is not a signed 64-bit integer"),
        ("step 1 add res=r value=", 2, "value= is not"),
        ("step 1 atomic-add res=r value=1x", 2, "value=1x"),
        ("step 1 crash signal=KILL", 2, "signal=KILL is not a number"),
        ("step 1 crash signal=0", 2, "signal=0 is not a number in 1...64"),
        ("step 1 crash", 2, "crash needs signal="),
        ("step 1 check res=r hex=0g", 2, "hex=0g is not pairs of hex digits"),
        ("step 1 check res=r hex=abc", 2, "hex=abc"),
        ("step 1 store res=r hex=01 u64=1", 2, "needs u64= or hex= (one of them)"),
        ("step 1 seal res=r seals=shrink,melt", 2, "unknown seal 'melt'"),
        ("step 1 seal res=r seals=shrink,,grow", 2, "unknown seal ''"),
        ("step 1 seal res=r", 2, "seal needs seals="),
        ("step 1 fill res=r byte=256", 2, "byte=256 is not a number in 0...255"),
        ("step 1 attach res=r mode=wo", 2, "mode=wo"),
        ("step 1 sleep ns=soon", 2, "ns=soon"),
        ("step 1 sleep ns=-5", 2, "negative"),
        ("step 1 barrier", 2, "barrier needs name="),
        ("step 1 lock res=r offset=0", 2, "unknown field 'offset'"),
        ("step 1 sleep ns=1 colour=red", 2, "unknown field 'colour'"),
        ("step 1 add res=r value=1 value=2", 2, "field 'value' given twice"),
        ("step 1 load res=r plus=1", 2, "unknown field 'plus'"),
        ("step 1 store-loaded res=r plus=++1", 2, "plus=++1"),
        ("step 1 compare res=r offset=0", 2, "compare needs with="),
        ("step 1 compare res=r with=8x", 2, "with=8x"),
        ("step 1 jump", 2, "unknown step 'jump'"),
        ("repeat 1 times=1 for-ns=5 body=0", 2, "times= or for-ns= (one of them)"),
        ("repeat 1 times=x body=0", 2, "times=x"),
        ("resource r kind=file lock=futex colour=red", 2, "unknown field 'colour'"),
        ("resource r kind=file lock=futex size=4k", 2, "size=4k"),
        ("resource r kind=file lock=futex private=yes", 2, "private=yes"),
        ("resource r kind=file lock=futex fd=-1", 2, "fd=-1"),
        ("file a%zz.yaml", 2, "file PATH"),
    ]

    @Test(arguments: brokenPlans.indices)
    func planDecoderRefusesBadFields(index: Int) {
        let (line, number, message) = Self.brokenPlans[index]
        do {
            _ = try Plan.parse("shm-harness-plan 1\n\(line)\nend\n")
            Issue.record("accepted: \(line)")
        } catch {
            #expect(error.line == number && error.message.contains(message), "\(line): \(error)")
            #expect(error.description.hasPrefix("plan line \(number): "))
        }
    }

    /// A hand-made plan whose store-loaded comes before any load: the step fails with unsupported (exit 1), as
    /// in the C worker (test_plan.c); the loader never writes such a plan.
    @Test func storeLoadedBeforeALoadIsUnsupported() throws {
        let path = temporaryPath("plan")
        defer { unlink(path) }
        try "shm-harness-plan 1\nresource r kind=file lock=futex path=%2Fnonexistent\nstep 9 store-loaded res=r offset=0\nend\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let run = try Run.harness(["worker", path])
        #expect(run.exitCode == 1, "\(run.stderr)")
        #expect(run.stdout.contains("\"error\":\"unsupported\",\"line\":9,"), "\(run.stdout)")
    }

    /// The Swift worker refuses a broken plan with exit 2, naming the plan line (the C worker: test_plan.c).
    @Test func swiftWorkerExits2OnABrokenPlan() throws {
        let path = temporaryPath("plan")
        defer { unlink(path) }
        try "shm-harness-plan 1\nstep 4 add res=r value=one\nend\n".write(toFile: path, atomically: true, encoding: .utf8)
        let run = try Run.harness(["worker", path])
        #expect(run.exitCode == 2)
        #expect(run.stderr.contains("plan line 2: value=one is not a signed 64-bit integer"), "\(run.stderr)")
    }
}
