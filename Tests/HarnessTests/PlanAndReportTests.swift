import Foundation
import JUnit
import ScenarioKit
import Testing

@testable import Harness

@Suite struct PlanAndReportTests {
    @Test func planRoundTrips() throws {
        for file in try ScenarioLoader.files(at: Paths.packageRoot + "/scenarios") {
            for scenario in try ScenarioLoader.load(file: file) {
                for worker in scenario.workers where worker.impl != .exec {
                    let resources = scenario.resources.map {
                        Plan.Resource(id: $0.id, kind: $0.kind, key: "posix:/x y?legacyKey=a&b", size: $0.size, lock: $0.lock,
                                      lockOffset: $0.lockOffset, path: "/tmp/with space", fd: nil, isPrivate: $0.isPrivate)
                    }
                    let plan = Plan(file: file, group: worker.name, index: 3, count: worker.count, resources: resources, steps: worker.steps)
                    let text = plan.encoded()
                    let parsed = try Plan.parse(text)
                    #expect(parsed.encoded() == text)
                    #expect(parsed.resources == resources)
                    #expect(!text.contains("x y"), "values are percent-encoded: one field never holds a space")
                }
            }
        }
    }

    @Test func brokenPlansAreRefused() {
        for text in ["", "shm-harness-plan 2\nend\n", "shm-harness-plan 1\nrepeat 1 times=-1 body=0\nend\n",
                     "shm-harness-plan 1\nstep 1 add res=a offset=zz\nend\n", "shm-harness-plan 1\nstep 1 nosuch\nend\n", "shm-harness-plan 1\nstep 1 lock res=a timeout-ns=0\nend\n", "shm-harness-plan 1\nstep 1 lock res=a timeout-ns=2s\nend\n", "shm-harness-plan 1\nrepeat 1 times=2 body=3\nend\n", "shm-harness-plan 1\n"] {
            #expect(throws: Plan.ParseError.self) { try Plan.parse(text) }
        }
    }

    @Test func junitEscapesAndValidates() throws {
        let hostile = "a<b>&\"c'\u{1}\u{0}\u{7}\u{FFFE} é 😀\ttab"
        let results = [
            TestCaseResult(classname: "x&y", name: "p[\(hostile)]", time: 0.1234, status: .passed, output: hostile, properties: [("ops", "5")]),
            TestCaseResult(classname: "x&y", name: "f", time: 1, status: .failed(message: hostile, type: "expectation"), detail: hostile),
            TestCaseResult(classname: "z", name: "e", time: 2, status: .errored(message: "timeout", type: "error")),
            TestCaseResult(classname: "z", name: "s", time: 0, status: .skipped(message: "requires root")),
        ]
        let xml = JUnitWriter.render(results, context: ReportContext(hostname: "h<1>", timestamp: "2026-11-26T00:00:00", properties: [("k", hostile)]))
        #expect(!xml.contains("\u{1}") && !xml.contains("\u{0}") && !xml.contains("\u{FFFE}"))
        #expect(xml.contains("&lt;b&gt;&amp;&quot;c&apos;"))
        #expect(xml.contains("<testsuites name=\"shm-harness\" tests=\"4\" failures=\"1\" errors=\"1\""))
        #expect(xml.contains("skipped=\"1\""))
        #expect(xml.contains("time=\"0.123\""))
        #expect(xml.contains("[[PROPERTY|ops=5]]"))
        let path = temporaryPath("report.xml")
        defer { unlink(path) }
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        let problems = try schemaProblems(path)
        try #require(problems != "xmllint is not installed", "install libxml2-utils")
        #expect(problems == nil, "\(problems ?? "")")
    }

    @Test func shardsSplitTheCatalogueExactly() throws {
        let all = try Runner.load([Paths.packageRoot + "/scenarios"])
        var union: [String] = []
        for k in 1...3 {
            union += Runner.select(all, tags: [], filters: [], shard: (k, 3)).map(\.identifier)
        }
        #expect(union.sorted() == all.map(\.identifier).sorted())
        #expect(Set(union).count == union.count)
        #expect(Runner.select(all, tags: ["crash"], filters: [], shard: nil).allSatisfy { $0.tags.contains("crash") })
        #expect(Runner.select(all, tags: [], filters: ["lock.*"], shard: nil).allSatisfy { $0.classname == "lock" })
    }

    @Test func durations() {
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(DurationText.parse("2m") == .seconds(120))
        #expect(DurationText.parse("10") == nil)
        #expect(DurationText.parse("-1s") == nil)
        #expect(DurationText.parse("s") == nil)
    }
}
