import Foundation
@testable import Harness
import ScenarioKit
import Testing

/// Outcome counting through the plan: a list of outcomes and a counter survive encoding, and the decoder
/// refuses broken lists as the C and Qt workers do (docs/worker-protocol.md).
@Suite struct OutcomeCountingTests {
    static let yaml = """
        resources:
          seg: {kind: segment, size: 64}
        workers:
          - steps:
              - create: seg
                expect-error: [none, already-exists]
                count: won
              - detach: seg
                expect-error: not-found
                count: won
        expect:
          outcomes:
            won: { ok: 1, already-exists: {min: 2, max: 5}, not-found: 0 }
        """

    @Test func listsAndCountersRoundTrip() throws {
        let scenario = try #require(try ScenarioLoader.load(text: Self.yaml, file: "o.yaml").first)
        let plan = Plan(file: "o.yaml", group: "w", index: 0, count: 1, resources: [], steps: scenario.workers[0].steps)
        let text = plan.encoded()
        #expect(text.contains(" expect-error=none,already-exists count=won\n"), "\(text)")
        let parsed = try Plan.parse(text)
        #expect(parsed.steps[0].outcomes == ["none", "already-exists"] && parsed.steps[0].expectError == nil)
        #expect(parsed.steps[0].count == "won" && parsed.steps[1].count == "won")
        #expect(parsed.steps[1].expectError == "not-found" && parsed.steps[1].outcomes == nil)
        #expect(parsed.steps[0].accepts("ok") && parsed.steps[0].accepts("already-exists") && !parsed.steps[0].accepts("not-found"))
        #expect(!parsed.steps[1].accepts("ok") && parsed.steps[1].accepts("not-found"))
        let expectation = try #require(scenario.expect.outcomes.first)
        #expect(expectation.name == "won")
        #expect(expectation.problems(["ok": 1, "already-exists": 3]).isEmpty)
        #expect(expectation.problems(["ok": 2, "already-exists": 1, "busy": 1]) == [
            "ok: want 1, got 2", "already-exists: want 2...5, got 1", "busy: want 0 (not listed), got 1",
        ])
    }

    @Test(arguments: [
        "step 1 sleep expect-error=none,,busy", "step 1 sleep expect-error=busy,", "step 1 sleep expect-error=busy,busy",
        "step 1 sleep count=", "repeat 1 times=1 body=0 count=c", "step 1 sleep expect-error=none,nope",
    ])
    func brokenListsAreRefused(_ line: String) {
        #expect(throws: Plan.ParseError.self) { try Plan.parse("shm-harness-plan 1\n\(line)\nend\n") }
    }

    /// Counting and outcome lists hold on every step kind, the ones the workers run on their fast path (lock,
    /// unlock, try-lock, add, atomic-add) included: a try-lock against a held lock is tallied `busy` by the Swift
    /// worker as by the C worker (the Swift worker's fast path once skipped the tally and failed on busy).
    @Test func fastPathStepsAreCountedToo() throws {
        let file = temporaryPath("counted.yaml")
        let report = temporaryPath("counted.xml")
        defer { unlink(file); unlink(report) }
        try """
            summary: A try-lock against a held lock is counted busy; a free one ok.
            matrix:
              impl: [swift, c]
            resources:
              seg: {kind: segment, size: 4096}
            setup:
              - create: seg
            workers:
              - name: holder
                impl: ${impl}
                steps:
                  - attach: seg
                  - barrier: attached         # attach takes the lock too (Qt's call order)
                  - lock: seg
                  - barrier: held
                  - barrier: tried
                  - unlock: seg
                  - barrier: free
                  - detach: seg
              - name: prober
                impl: ${impl}
                steps:
                  - attach: seg
                  - barrier: attached
                  - barrier: held
                  - try-lock: seg
                    expect-error: [none, busy]
                    count: tries
                  - barrier: tried
                  - barrier: free
                  - try-lock: seg
                    expect-error: [none, busy]
                    count: tries
                  - unlock: seg
                  - atomic-add: {res: seg, offset: 64, value: 1}
                    count: adds
                  - detach: seg
            expect:
              outcomes:
                tries: { ok: 1, busy: 1 }
                adds: { ok: 1 }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let run = try Run.harness(["run", "--no-strict", "--leak-check", "own", "--junit", report, file])
        #expect(run.exitCode == 0, "\(run.stdout)\(run.stderr)")
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        #expect(xml.components(separatedBy: "[[PROPERTY|outcome.tries.busy=1]]").count == 3, "both impls count the busy try-lock: \(xml)")
        #expect(xml.components(separatedBy: "[[PROPERTY|outcome.adds.ok=1]]").count == 3, "\(xml)")
    }
}
