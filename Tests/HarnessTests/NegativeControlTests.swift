import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Negative controls: for each property the catalogue proves (lock exclusion, exact counts, bus-error,
/// permission refusal, owner-died, seals), a copy of the proving scenario with the protection removed
/// (Fixtures/negative/) must fail through the runner, for the Swift and the C worker, with the failure that
/// names the broken expectation, the worker and its step. A check that cannot turn red proves nothing.
@Suite(.serialized) struct NegativeControlTests {
    /// One fixture and what each of its testcases must fail with: the `<failure message>` must match one of
    /// `message` (whole-string regular expressions; which of several broken expectations comes first depends on
    /// which worker ends first), and the failure's text must match every one of `all`.
    struct Control: CustomTestStringConvertible, Sendable {
        var fixture: String
        var message: [String]
        var all: [String] = []
        var testDescription: String { fixture }
    }

    static func file(_ fixture: String) -> String { Paths.fixtures + "/negative/" + fixture + ".yaml" }

    /// A literal for a regular expression.
    static func literal(_ text: String) -> String {
        var out = ""
        for c in text {
            if "\\^$.|?*+()[]{}/".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    static func step(_ fixture: String, worker: String, line: Int, step: String, _ rest: String) -> String {
        literal("worker \(worker), step at \(file(fixture)):\(line) (\(step)): \(rest)")
    }

    static func memory(_ fixture: String, _ check: String, line: Int, want: UInt64, got: String) -> String {
        literal("expect memory \(check) (\(file(fixture)):\(line):7): want u64 \(want), got u64 ") + got
    }

    static let controls: [Control] = [
        // outcome counting: exactly one create wins (create/race-one-creator.yaml); with the first segment gone
        // before the race a second one wins too
        Control(
            fixture: "race-two-winners",
            message: [literal("expect outcomes create (\(file("race-two-winners")):29:5): ok: want 1, got 2; already-exists: want 7, got 6 (counted: already-exists=6 ok=2)")]),
        // lock exclusion: the forced interleaving loses an update every time, with no lock at all...
        Control(fixture: "lost-update", message: [memory("lost-update", "seg@0", line: 23, want: 2, got: "1")]),
        // ...and the lock/exclusion.yaml scenario without its lock steps loses it too
        Control(fixture: "exclusion-no-lock", message: [memory("exclusion-no-lock", "seg@0", line: 38, want: 2, got: "1")]),
        // exact counts: lock/counter.yaml without the lock comes out short; stress/repeat-for.yaml's compare sees it
        Control(fixture: "counter-no-lock", message: [memory("counter-no-lock", "seg@0", line: 30, want: 400, got: "[0-9]{1,3}")]),
        Control(
            fixture: "repeat-for-no-lock",
            message: [
                literal("worker looper/") + "[0-3]" + literal(", step at \(file("repeat-for-no-lock")):28 (compare): check-mismatch: at offset 0 of seg: u64 ")
                    + "[0-9]+" + literal(", but at offset 8: u64 ") + "[0-9]+"
            ]),
        Control(fixture: "storm-wrong-count", message: [memory("storm-wrong-count", "seg@8", line: 21, want: 9, got: "8")]),
        // bus-error: no shrink, no bus-error and no SIGBUS
        Control(
            fixture: "shrink-no-shrink",
            message: [
                step("shrink-no-shrink", worker: "checked-reader/0", line: 28, step: "check-fill", "unexpected-success: expected bus-error, but the step succeeded"),
                literal("worker plain-reader/0 ended with exit 0; expected signal SIGBUS"),
            ],
            all: [
                step("shrink-no-shrink", worker: "checked-reader/0", line: 28, step: "check-fill", "unexpected-success: expected bus-error, but the step succeeded"),
                literal("worker plain-reader/0 ended with exit 0; expected signal SIGBUS"),
            ]),
        // permission refusal: no user drop
        Control(
            fixture: "stranger-same-user",
            message: [step("stranger-same-user", worker: "stranger/0", line: 18, step: "attach", "unexpected-success: expected permission-denied, but the step succeeded")]),
        // owner-died: no kill
        Control(
            fixture: "owner-died-no-kill",
            message: [step("owner-died-no-kill", worker: "next/0", line: 28, step: "lock", "unexpected-success: expected owner-died, but the step succeeded")]),
        // seals: no seals
        Control(
            fixture: "seals-unsealed",
            message: [step("seals-unsealed", worker: "reader/0", line: 21, step: "truncate", "unexpected-success: expected sealed, but the step succeeded")]),
        // descriptor passing: a memfd passed unsealed does not protect its owner...
        Control(
            fixture: "passed-unsealed",
            message: [step("passed-unsealed", worker: "receiver/0", line: 23, step: "attach", "unexpected-success: expected sealed, but the step succeeded")]),
        // ...and without receive-fd the receiver's memory is not the sender's
        Control(
            fixture: "passed-not-received",
            message: [step("passed-not-received", worker: "receiver/0", line: 24, step: "check", "check-mismatch: at offset 128 of blob: want u64 4242, got u64 0")]),
        // a private mapping: mapped shared instead, the reader sees the writer's store
        Control(
            fixture: "private-mapping-shared",
            message: [step("private-mapping-shared", worker: "private-reader/0", line: 20, step: "check", "check-mismatch: at offset 136 of data: want u64 0, got u64 2")]),
        // check-file reads the file, not the mapping: a private store is not in it
        Control(
            fixture: "check-file-private-store",
            message: [step("check-file-private-store", worker: "private-writer/0", line: 19, step: "check-file", "check-mismatch: in the file of data at offset 256 (read(2)): want u64 99, got u64 0")]),
        // semaphores: a count of 4 lets a fourth in (check-at-most sees it); a missing release (check-value sees it)
        Control(
            fixture: "semaphore-count-exceeded",
            message: [
                literal("worker inside/") + "[0-3]" + literal(", step at \(file("semaphore-count-exceeded")):23 (check-at-most): check-mismatch: at offset 0 of gauge: u64 4 is more than 3")
            ]),
        Control(
            fixture: "semaphore-release-missing",
            message: [step("semaphore-release-missing", worker: "observer/0", line: 24, step: "check-value", "check-mismatch: semaphore sem: want count 2, got 1")]),
    ]

    @Test(arguments: controls)
    func protectionRemovedFailsWithTheExpectedMessage(_ control: Control) throws {
        let report = temporaryPath("negative.xml")
        defer { unlink(report) }
        let result = try Run.harness(["run", "--leak-check", "own", "--junit", report, Self.file(control.fixture)])
        #expect(result.exitCode == 1, "a negative control must fail the run: \(result.stderr)")
        let xml = try String(contentsOfFile: report, encoding: .utf8)
        let cases = Self.testcases(xml)
        #expect(cases.map(\.name).sorted() == ["\(control.fixture)[impl=c]", "\(control.fixture)[impl=swift]"], "both workers, neither skipped")
        for testcase in cases {
            guard let failure = testcase.failure else {
                Issue.record("\(testcase.name) did not fail: \(testcase.body)")
                continue
            }
            let matches = try control.message.contains { try Regex($0).wholeMatch(in: failure.message) != nil }
            #expect(matches, "\(testcase.name): unexpected failure message '\(failure.message)'")
            for pattern in control.all {
                let lines = failure.text.split(separator: "\n").map(String.init)
                #expect(try lines.contains { try Regex(pattern).wholeMatch(in: $0) != nil }, "\(testcase.name): no line matches \(pattern) in \(failure.text)")
            }
        }
    }

    struct Testcase {
        var name: String
        var body: String
        var failure: (message: String, text: String)?
    }

    /// The testcases of a JUnit report, with their `<failure>` message and text (unescaped).
    static func testcases(_ xml: String) -> [Testcase] {
        var result: [Testcase] = []
        for chunk in xml.components(separatedBy: "<testcase ").dropFirst() {
            let body = chunk.components(separatedBy: "</testcase>").first ?? chunk
            guard let name = attribute("name", in: body) else { continue }
            var testcase = Testcase(name: name, body: body)
            if let start = body.range(of: "<failure ") {
                let element = body[start.upperBound...]
                let message = attribute("message", in: String(element)) ?? ""
                let text = element.split(separator: ">", maxSplits: 1).dropFirst().first.map { String($0.prefix { $0 != "<" }) } ?? ""
                testcase.failure = (message, unescape(text))
            }
            result.append(testcase)
        }
        return result
    }

    static func attribute(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: " \(name)=\"") ?? (text.hasPrefix("\(name)=\"") ? text.range(of: "\(name)=\"") : nil) else { return nil }
        let rest = text[start.upperBound...]
        return unescape(String(rest.prefix { $0 != "\"" }))
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#10;", with: "\n").replacingOccurrences(of: "&amp;", with: "&")
    }
}
