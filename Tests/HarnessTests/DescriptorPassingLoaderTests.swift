@testable import ScenarioKit
import Testing

@testable import Harness

/// send-fd / receive-fd and `share: pass`: what the loader refuses (at FILE:LINE:COLUMN, with why), and the plan
/// lines the runner writes for them (`channel`), decoded back as written.
@Suite struct DescriptorPassingLoaderTests {
    static let pass: String = "resources:\n  m: {kind: memfd, share: pass, size: 4096}\n"

    static func withPass(_ rest: String) -> String { pass + rest }

    static let broken: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("send-fd to a missing group", withPass("workers:\n  - name: a\n    steps:\n      - create: m\n      - send-fd: {res: m, to: b}\n"),
         7, 9, "send-fd to: 'b' is not a worker group; groups: a"),
        ("send-fd to a qt group", withPass("workers:\n  - name: a\n    steps:\n      - create: m\n      - send-fd: {res: m, to: b}\n  - name: b\n    impl: qt\n    steps:\n      - sleep: 1ms\n"),
         7, 9, "an impl: qt worker cannot receive descriptors"),
        ("send-fd to itself alone", withPass("workers:\n  - name: a\n    steps:\n      - create: m\n      - send-fd: {res: m, to: a}\n"),
         7, 9, "is this worker alone (count 1)"),
        ("send-fd without to", withPass("workers:\n  - name: a\n    steps:\n      - send-fd: {res: m}\n"),
         6, 18, "send-fd needs to:"),
        ("receive-fd without a sender", withPass("workers:\n  - name: a\n    steps:\n      - receive-fd: m\n"),
         6, 9, "receive-fd: no worker sends to 'a'"),
        ("send-fd of a segment", "resources:\n  s: {kind: segment, size: 64}\nworkers:\n  - name: a\n    steps:\n      - send-fd: {res: s, to: b}\n  - name: b\n    steps:\n      - receive-fd: s\n",
         6, 9, "send-fd passes a memfd's descriptor; 's' is a segment"),
        ("share on a file", "resources:\n  f: {kind: file, share: pass, size: 4096}\nworkers:\n  - steps:\n      - attach: f\n",
         2, 26, "'share' does not apply to a file resource"),
        ("unknown share", "resources:\n  m: {kind: memfd, share: lend, size: 4096}\nworkers:\n  - steps:\n      - attach: m\n",
         2, 27, "unknown share 'lend'; expected one of: inherit, pass"),
        ("share: pass in setup", withPass("setup:\n  - create: m\nworkers:\n  - steps:\n      - attach: m\n"),
         4, 5, "'m' has share: pass: a worker makes it (create) and sends it"),
        ("share: pass in expect memory", withPass("workers:\n  - steps:\n      - create: m\nexpect:\n  memory:\n    - {res: m, offset: 128, u64: 1}\n"),
         8, 7, "'m' has share: pass: the runner never holds it"),
        ("too many socket pairs", withPass("workers:\n  - name: a\n    count: 64\n    steps:\n      - create: m\n      - send-fd: {res: m, to: b}\n  - name: b\n    count: 17\n    steps:\n      - receive-fd: m\n"),
         8, 9, "needs a socket pair for each of 64 × 17 pairs of processes; at most 1024"),
        ("qt cannot send-fd", withPass("workers:\n  - name: a\n    impl: qt\n    steps:\n      - send-fd: {res: m, to: b}\n  - name: b\n    steps:\n      - receive-fd: m\n"),
         7, 9, "impl: qt cannot run send-fd: Qt has no descriptor passing"),
    ]

    @Test(arguments: broken.indices)
    func brokenFilesNameThePlace(index: Int) throws {
        let (name, yaml, line, column, message) = Self.broken[index]
        try expectRefusal(name, yaml, line: line, column: column, message: message, file: "fd.yaml")
    }

    @Test func aGoodFileLoads() throws {
        let yaml = Self.withPass("workers:\n  - name: a\n    count: 2\n    steps:\n      - create: m\n      - send-fd: {res: m, to: b}\n  - name: b\n    impl: c\n    steps:\n      - receive-fd: m\n      - attach: m\n")
        let scenario = try #require(try ScenarioLoader.load(text: yaml, file: "ok.yaml").first)
        #expect(scenario.resources[0].share == .pass)
        guard case .sendFD("m", "b") = scenario.workers[0].steps[1].action else { Issue.record("\(scenario.workers[0].steps[1])"); return }
        guard case .receiveFD("m") = scenario.workers[1].steps[0].action else { Issue.record("\(scenario.workers[1].steps[0])"); return }
        // the runner's sockets: each process of a with each process of b, and nothing for a process with itself
        let channels = try DescriptorChannelSet(workers: scenario.workers)
        defer { channels.close() }
        #expect(channels.channels(of: "a", 0).map(\.group) == ["b"])
        #expect(channels.channels(of: "a", 1).map(\.group) == ["b"])
        #expect(channels.channels(of: "b", 0).map { "\($0.group)/\($0.index)" } == ["a/0", "a/1"])
        #expect(Set((channels.channels(of: "a", 0) + channels.channels(of: "a", 1) + channels.channels(of: "b", 0)).map(\.fd)).count == 4)
    }

    @Test func planLinesRoundTrip() throws {
        let location = SourceLocation(file: "s.yaml", line: 9, column: 1)
        var plan = Plan(
            file: "s.yaml", group: "owner", index: 0, count: 1,
            resources: [Plan.Resource(id: "m", kind: .memfd, key: nil, size: 4096, lock: .futex, lockOffset: 0, path: nil, fd: nil, isPrivate: false)],
            steps: [
                Step(action: .sendFD(resource: "m", to: "re ceiver"), expectError: nil, location: location),
                Step(action: .receiveFD(resource: "m"), expectError: "not-found", location: location),
            ])
        plan.channels = [Plan.Channel(group: "re ceiver", index: 3, fd: 11)]
        let text = plan.encoded()
        #expect(text.contains("\nchannel re%20ceiver 3 fd=11\n"))
        #expect(text.contains("\nstep 9 send-fd res=m to=re%20ceiver\n"))
        #expect(text.contains("\nstep 9 receive-fd res=m expect-error=not-found\n"))
        let back = try Plan.parse(text)
        #expect(back.channels == plan.channels)
        guard case .sendFD("m", "re ceiver") = back.steps[0].action else { Issue.record("\(back.steps[0])"); return }
        guard case .receiveFD("m") = back.steps[1].action else { Issue.record("\(back.steps[1])"); return }
    }

    @Test(arguments: [
        "channel b 0", "channel b x fd=3", "channel b -1 fd=3", "channel b 0 fd=-3", "channel b 0 fd=three", "channel b 0 pipe=3",
        "channel b 0 expect-error=busy", "step 1 send-fd res=m", "step 1 send-fd res=m to=", "step 1 receive-fd res=m to=b",
    ])
    func brokenPlanLinesAreRefused(line: String) {
        #expect(throws: Plan.ParseError.self, "\(line)") { try Plan.parse("shm-harness-plan 1\n\(line)\nend\n") }
    }
}
