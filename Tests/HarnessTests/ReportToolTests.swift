import Foundation
import JUnit
import Testing

@testable import Harness

#if canImport(Glibc)
import Glibc
#endif

/// `report merge`, `report summary` and progress in CI logs, through the built binary.
@Suite(.serialized) struct ReportToolTests {
    /// Writes a report of these results (one host) and returns its path.
    func report(_ name: String, host: String = "host-a", properties: [(String, String)] = [("kernel.release", "6.1")], _ results: [TestCaseResult]) throws -> String {
        let path = temporaryPath(name)
        let xml = JUnitWriter.render(results, context: ReportContext(hostname: host, timestamp: "2026-11-29T10:00:00", properties: properties))
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
        try expectValid(path)
        return path
    }

    func read(_ path: String) throws -> JUnitReport {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return try JUnitReader.parse(bytes, path: path)
    }

    /// The root's tests/failures/errors attributes.
    func totals(_ path: String) throws -> [String: String] {
        let root = try MiniXML.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        return Dictionary(uniqueKeysWithValues: root.attributes.filter { ["tests", "failures", "errors"].contains($0.name) }.map { ($0.name, $0.value) })
    }

    func expectValid(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let problems = try schemaProblems(path)
        try #require(problems != "xmllint is not installed", "install libxml2-utils", sourceLocation: sourceLocation)
        #expect(problems == nil, "\(path) must validate: \(problems ?? "")", sourceLocation: sourceLocation)
    }

    /// What must be equal between a merged report and an unsharded run: each testcase's outcome and message.
    func outcomes(_ report: JUnitReport) -> [String: String] {
        var out: [String: String] = [:]
        for result in report.cases {
            let message: String
            switch result.status {
            case .passed: message = ""
            case .failed(let text, let type), .errored(let text, let type): message = "\(type): \(text)"
            case .skipped(let text): message = text
            }
            out[ReportMerge.identifier(result)] = "\(result.status.word) \(message)"
        }
        return out
    }

    @Test func mergedShardsEqualAnUnshardedRun() throws {
        let catalogue = Paths.fixtures + "/regression"
        let whole = temporaryPath("whole.xml")
        let shard1 = temporaryPath("shard1.xml")
        let shard2 = temporaryPath("shard2.xml")
        let merged = temporaryPath("merged.xml")
        let only1 = temporaryPath("only1.xml")
        defer { for path in [whole, shard1, shard2, merged, only1] { unlink(path) } }
        let common = ["run", "--leak-check", "own", "--jobs", "2"]
        let runs = [
            try Run.harness(common + ["--junit", whole, catalogue]),
            try Run.harness(common + ["--junit", shard1, "--shard", "1/2", catalogue]),
            try Run.harness(common + ["--junit", shard2, "--shard", "2/2", catalogue]),
        ]
        #expect(runs[0].exitCode == 1, "the catalogue has a failing testcase: \(runs[0].stderr)")
        #expect(runs[1...].map { $0.exitCode ?? -1 }.sorted() == [0, 1], "one shard holds the failing testcase")
        let unsharded = try read(whole)
        let parts = [try read(shard1), try read(shard2)]
        try #require(unsharded.cases.count == 6, "\(unsharded.cases.map(ReportMerge.identifier))")
        try #require(parts.allSatisfy { !$0.cases.isEmpty }, "both shards hold testcases, so the merge joins something")
        #expect(Set(unsharded.cases.map(\.status.word)) == ["passed", "failed", "skipped"])

        let merge = try Run.harness(["report", "merge", shard1, shard2, "-o", merged])
        #expect(merge.exitCode == 0, "\(merge.stderr)")
        for path in [whole, shard1, shard2, merged] { try expectValid(path) }
        let result = try read(merged)
        #expect(outcomes(result) == outcomes(unsharded))
        #expect(result.cases.count == unsharded.cases.count)
        #expect(try totals(merged) == totals(whole))
        // Each shard's suites keep their own properties (which shard, which machine).
        let shards = Set(result.suites.compactMap { suite in suite.properties.first { $0.name == "harness.shard" }?.value })
        #expect(shards == ["1/2", "2/2"])
        #expect(result.suites.allSatisfy { $0.properties.contains { $0.name == "kernel.release" } })

        // Negative control: one shard alone is not the whole run, and the comparison sees it.
        let alone = try Run.harness(["report", "merge", shard1, "-o", only1])
        #expect(alone.exitCode == 0, "\(alone.stderr)")
        try expectValid(only1)
        #expect(outcomes(try read(only1)) != outcomes(unsharded))
        #expect(try totals(only1) != totals(whole))
    }

    @Test func mergeOfTheSameTestcaseTwiceIsAnErrorOrRenamed() throws {
        let a = try report("a.xml", [
            TestCaseResult(classname: "lock", name: "counter[x]", time: 1, status: .passed),
            TestCaseResult(classname: "lock", name: "other", time: 1, status: .passed),
        ])
        let b = try report("b.xml", host: "host-b", [
            TestCaseResult(classname: "lock", name: "counter[x]", time: 2, status: .failed(message: "lost", type: "expectation")),
        ])
        let out = temporaryPath("out.xml")
        defer { for path in [a, b, out] { unlink(path) } }
        let refused = try Run.harness(["report", "merge", a, b, "-o", out])
        #expect(refused.exitCode == 2)
        #expect(refused.stderr.contains("testcase lock.counter[x] is in both \(a) and \(b)"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "nothing is written")

        let renamed = try Run.harness(["report", "merge", "--duplicates", "rename", a, b, "-o", out])
        #expect(renamed.exitCode == 0, "\(renamed.stderr)")
        try expectValid(out)
        let merged = try read(out)
        #expect(merged.cases.map(\.name).sorted() == ["counter[x]", "counter[x] #2", "other"])
        #expect(merged.cases.first { $0.name == "counter[x] #2" }?.status == .failed(message: "lost", type: "expectation"))
        #expect(try totals(out) == ["tests": "3", "failures": "1", "errors": "0"])
    }

    @Test func mergeKeepsEachMachinesPropertiesPerSuite() throws {
        let a = try report("a.xml", host: "amd", properties: [("architecture", "x86_64")], [
            TestCaseResult(classname: "lock", name: "one", time: 1, status: .passed),
        ])
        let b = try report("b.xml", host: "arm", properties: [("architecture", "aarch64")], [
            TestCaseResult(classname: "lock", name: "two", time: 1, status: .errored(message: "timeout", type: "error")),
        ])
        // Same machine, same properties as a: its suite joins a's.
        let c = try report("c.xml", host: "amd", properties: [("architecture", "x86_64")], [
            TestCaseResult(classname: "lock", name: "three", time: 1, status: .skipped(message: "requires root")),
        ])
        let out = temporaryPath("out.xml")
        defer { for path in [a, b, c, out] { unlink(path) } }
        let run = try Run.harness(["report", "merge", a, b, c, "--output", out])
        #expect(run.exitCode == 0, "\(run.stderr)")
        try expectValid(out)
        let xml = try String(contentsOfFile: out, encoding: .utf8)
        #expect(xml.contains("<testsuites name=\"shm-harness\" tests=\"3\" failures=\"0\" errors=\"1\""))
        let suites = try read(out).suites
        #expect(suites.map(\.name) == ["lock", "lock"])
        #expect(suites.map(\.hostname) == ["amd", "arm"])
        #expect(suites[0].cases.map(\.name) == ["one", "three"])
        #expect(suites[0].properties.map(\.value) == ["x86_64"])
        #expect(suites[1].properties.map(\.value) == ["aarch64"])
        #expect(xml.contains("<testsuite name=\"lock\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"1\""))
    }

    /// Two runs of the same catalogue: one passing where the other failed.
    func summaryInputs() throws -> (String, String) {
        let a = try report("a.xml", [
            TestCaseResult(classname: "lock", name: "ok", time: 0.5, status: .passed, properties: [("operations", "100")]),
            TestCaseResult(classname: "lock", name: "bad", time: 1.25, status: .failed(message: "expected 3 | got 2", type: "expectation"),
                           detail: "hammer/0 wrong.yaml:12 (check)\nexpected 3 | got 2", output: "--- hammer/0 (exit 1)\nlast words ```"),
            TestCaseResult(classname: "lock", name: "flip", time: 0.1, status: .passed),
            TestCaseResult(classname: "lock", name: "hang", time: 1, status: .errored(message: "timeout after 1s", type: "error")),
            TestCaseResult(classname: "lock", name: "skip", time: 0, status: .skipped(message: "requires root")),
        ])
        let b = try report("b.xml", host: "host-b", [
            TestCaseResult(classname: "lock", name: "flip", time: 0.2, status: .failed(message: "lost update", type: "expectation")),
            TestCaseResult(classname: "lock", name: "marked", time: 0.3, status: .passed, properties: [("flaky", "true")]),
            TestCaseResult(classname: "odd", name: "<script>*x*|y", time: 9, status: .errored(message: "a <b>|c</b> `d`", type: "error")),
        ])
        return (a, b)
    }

    @Test func summaryAsText() throws {
        let (a, b) = try summaryInputs()
        defer { unlink(a); unlink(b) }
        let run = try Run.harness(["report", "summary", a, b])
        #expect(run.exitCode == 0, "\(run.stderr)")
        let text = run.stdout
        #expect(text.hasPrefix("shm-harness report: 8 testcase(s) in 2 file(s): 3 passed, 2 failed, 2 errored, 1 skipped; "), "\(text)")
        #expect(text.contains("hosts: host-a, host-b\n"))
        #expect(text.contains("\nfailed and errored (4):\n  FAIL  lock.bad  (\(a))\n        expected 3 | got 2\n"), "\(text)")
        #expect(text.contains("  ERROR lock.hang  (\(a))\n        timeout after 1s\n"))
        #expect(text.contains("  FAIL  lock.flip  (\(b))\n        lost update\n"))
        #expect(text.contains("\nflaky (2):\n  lock.flip: passed once (\(a)); failed once (\(b))\n  lock.marked: passed once (\(b)); marked flaky\n"), "\(text)")
        #expect(text.contains("\nslowest:\n      9.00s  odd.<script>*x*|y\n      1.25s  lock.bad\n      1.00s  lock.hang\n"), "\(text)")
        #expect(!text.contains("lock.ok:"), "a testcase that always passed is not flaky")

        // Negative control: one file alone has nothing flaky (lock.flip only passed there).
        let single = try Run.harness(["report", "summary", a])
        #expect(single.exitCode == 0)
        #expect(!single.stdout.contains("flaky ("))
        #expect(single.stdout.contains("5 testcase(s) in 1 file(s): 2 passed, 1 failed, 1 errored, 1 skipped"))
    }

    @Test func summaryAsMarkdown() throws {
        let (a, b) = try summaryInputs()
        defer { unlink(a); unlink(b) }
        let run = try Run.harness(["report", "summary", "--markdown", "--slowest", "2", a, b])
        #expect(run.exitCode == 0, "\(run.stderr)")
        let md = run.stdout
        #expect(md.hasPrefix("### ❌ shm-harness: 2 failed, 2 errored\n"), "\(md)")
        #expect(md.contains("| Outcome | Testcases |\n|:--|--:|\n| passed | 3 |\n| failed | 2 |\n| errored | 2 |\n| skipped | 1 |\n| **total** | **8** |\n"))
        #expect(md.contains("| failed | lock.bad | expected 3 \\| got 2 | "), "pipes in a cell are escaped: \(md)")
        #expect(md.contains("| errored | odd.\\<script\\>\\*x\\*\\|y | a \\<b\\>\\|c\\</b\\> \\`d\\` | "), "\(md)")
        #expect(md.contains("<details><summary>failed: lock.bad (\(a))</summary>\n\n````text\nhammer/0 wrong.yaml:12 (check)\nexpected 3 | got 2\n\n--- hammer/0 (exit 1)\nlast words ```\n````\n\n</details>"), "the fence outgrows the detail's backticks: \(md)")
        #expect(md.contains("<details><summary>errored: odd.&lt;script&gt;*x*|y (\(b))</summary>"))
        #expect(md.contains("| lock.flip | passed once (") && md.contains("); failed once ("))
        #expect(md.contains("#### Slowest\n\n| Testcase | Time |\n|:--|--:|\n| odd.\\<script\\>\\*x\\*\\|y | 9.00s |\n| lock.bad | 1.25s |\n"))
        // Outside code blocks and <summary>, no raw tag from a testcase reaches the page.
        var inFence = false
        var outside: [Substring] = []
        for line in md.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inFence.toggle(); continue }
            if !inFence && !line.hasPrefix("<details>") { outside.append(line) }
        }
        #expect(!outside.joined(separator: "\n").contains("<script>") && !outside.joined(separator: "\n").contains("<b>"))
        // Every row of the failures table has as many unescaped pipes as its header.
        let rows = md.components(separatedBy: "| Outcome | Testcase | Message | Report |\n|:--|:--|:--|:--|\n")[1]
            .components(separatedBy: "\n\n")[0].split(separator: "\n")
        #expect(rows.count == 4)
        for line in rows {
            let pipes = line.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count
            #expect(pipes == 5, "\(line)")
        }

        let green = try report("green.xml", [TestCaseResult(classname: "lock", name: "ok", time: 1, status: .passed)])
        defer { unlink(green) }
        let passing = try Run.harness(["report", "summary", "--markdown", green])
        #expect(passing.stdout.hasPrefix("### ✅ shm-harness: all 1 testcases passed\n"))
        #expect(!passing.stdout.contains("<details>"))
    }

    static let cmark = ["/usr/bin/cmark-gfm", "/usr/local/bin/cmark-gfm"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The Markdown as GitHub renders it (cmark-gfm, GitHub's Markdown parser, with its table extension).
    @Test(.enabled(if: cmark != nil, "needs cmark-gfm (Debian package cmark-gfm; scripts/test.sh installs it)"))
    func summaryMarkdownRendersAsIntended() throws {
        let (a, b) = try summaryInputs()
        let md = temporaryPath("summary.md")
        defer { unlink(a); unlink(b); unlink(md) }
        let run = try Run.command(["/bin/sh", "-c", "\"$0\" report summary --markdown \"$1\" \"$2\" >\"$3\"", Paths.harness, a, b, md])
        #expect(run.exitCode == 0, "\(run.stderr)")
        let html = try Run.command([Self.cmark!, "-e", "table", "-e", "strikethrough", "-e", "autolink", "--unsafe", md]).stdout
        // The failures table: a header and four rows, each of exactly four cells, whatever the names hold.
        let table = try #require(html.components(separatedBy: "<th align=\"left\">Report</th>").dropFirst().first)
        let rows = table.components(separatedBy: "</tbody>")[0].components(separatedBy: "<tr>").dropFirst()
        #expect(rows.count == 4)
        for row in rows { #expect(row.components(separatedBy: "<td").count - 1 == 4, "\(row)") }
        #expect(html.contains("<td align=\"left\">odd.&lt;script&gt;*x*|y</td>"), "\(html)")
        // No markup from a testcase: no tag, no emphasis, no code span.
        #expect(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<em>x</em>"))
        #expect(html.components(separatedBy: "<details>").count - 1 == 4 && html.components(separatedBy: "</details>").count - 1 == 4)
        #expect(html.contains("<pre><code class=\"language-text\">hammer/0 wrong.yaml:12 (check)\nexpected 3 | got 2\n\n--- hammer/0 (exit 1)\nlast words ```\n</code></pre>"), "\(html)")
    }

    @Test func badInputIsExit2NamingTheFile() throws {
        let missing = temporaryPath("missing.xml")
        let notXML = temporaryPath("not.xml")
        let truncated = temporaryPath("truncated.xml")
        let html = temporaryPath("page.xml")
        let good = try report("good.xml", [TestCaseResult(classname: "lock", name: "ok", time: 1, status: .passed)])
        let out = temporaryPath("out.xml")
        defer { for path in [notXML, truncated, html, good, out] { unlink(path) } }
        try "hello\nworld <oops".write(toFile: notXML, atomically: true, encoding: .utf8)
        try "<?xml version=\"1.0\"?>\n<testsuites>\n  <testsuite name=\"a\" tests=\"1\" failures=\"0\" errors=\"0\">\n    <testcase name=\"x\"/>\n".write(toFile: truncated, atomically: true, encoding: .utf8)
        try "<html><body>no</body></html>\n".write(toFile: html, atomically: true, encoding: .utf8)
        let cases: [(String, String)] = [
            (missing, "\(missing): cannot open: No such file or directory"),
            (notXML, "\(notXML):1:1: not well-formed XML: expected '<' (this is not XML)"),
            (truncated, "\(truncated):3:3: not well-formed XML: <testsuite> is never closed"),
            (html, "\(html):1:1: not a JUnit report: the root element is <html>, expected <testsuites> or <testsuite>"),
            ("/", "/: not a regular file"),
        ]
        for (path, message) in cases {
            let summary = try Run.harness(["report", "summary", good, path])
            #expect(summary.exitCode == 2, "\(path)")
            #expect(summary.stderr.contains(message), "\(summary.stderr)")
            #expect(summary.stdout.isEmpty)
            let merge = try Run.harness(["report", "merge", good, path, "-o", out])
            #expect(merge.exitCode == 2)
            #expect(merge.stderr.contains(message), "\(merge.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // Every bad file is named at once.
        let all = try Run.harness(["report", "summary", missing, html])
        #expect(all.exitCode == 2)
        #expect(all.stderr.contains(missing) && all.stderr.contains(html))
        // Negative control: the good file alone is read.
        #expect(try Run.harness(["report", "summary", good]).exitCode == 0)
    }

    @Test func readerRoundTripsWhatTheWriterWrites() throws {
        let hostile = "a<b>&\"c'é 😀\ttab\nline ]]> [[PROPERTY|fake]"
        let results = [
            TestCaseResult(classname: "x&y", name: "p[\(hostile)]", time: 0.123, status: .passed, output: hostile, properties: [("ops", "5"), ("p99", "1 2")]),
            TestCaseResult(classname: "x&y", name: "f", time: 1, status: .failed(message: hostile, type: "expectation"), detail: hostile),
            TestCaseResult(classname: "z", name: "e", time: 2, status: .errored(message: "timeout", type: "error"), output: "--- w/0\nout"),
            TestCaseResult(classname: "z", name: "s", time: 0, status: .skipped(message: "requires root")),
        ]
        let xml = JUnitWriter.render(results, context: ReportContext(hostname: "h", timestamp: "t", properties: [("k", hostile)]))
        let report = try JUnitReader.parse(Array(xml.utf8), path: "r.xml")
        #expect(report.cases.count == results.count)
        for (read, written) in zip(report.cases, results) {
            #expect(read.classname == written.classname && read.name == written.name && read.status == written.status)
            #expect(read.time == written.time && read.detail == written.detail && read.output == written.output)
            #expect(read.properties.map { "\($0.name)=\($0.value)" } == written.properties.map { "\($0.name)=\($0.value)" })
        }
        #expect(report.suites.map(\.name) == ["x&y", "z"])
        #expect(report.suites[0].properties.first?.value == hostile)
        // Another tool's report: property lines among the output, a lone <testsuite> root, a flaky rerun.
        let foreign = """
            <testsuite name="s" tests="1" failures="0" errors="0"><testcase name="t" time="1,234.5">\
            <flakyFailure type="x"/><system-out>out1\n[[PROPERTY|a=1]]\nout2</system-out></testcase></testsuite>
            """
        let other = try JUnitReader.parse(Array(foreign.utf8), path: "o.xml").cases
        #expect(other.map(\.classname) == ["s"] && other.map(\.time) == [1234.5])
        #expect(other.first?.output == "out1\nout2")
        #expect(other.first?.properties.map { "\($0.name)=\($0.value)" } == ["a=1", "flaky=true"])
        // Rendering what was read gives the same document.
        #expect(JUnitWriter.render(suites: report.suites) == xml)
    }

    @Test func parserRefusesWhatIsNotWellFormed() throws {
        func error(_ text: String) -> String? {
            do { _ = try MiniXML.parse(Array(text.utf8)); return nil } catch { return error.description }
        }
        #expect(error("<a x='1' y=\"&#65;&lt;&#x42;\"><![CDATA[<raw>]]><!-- c --><?pi x?><b/></a>") == nil)
        #expect(error("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>")?.contains("DOCTYPE is not accepted") == true)
        #expect(error("<a>&e;</a>") == "1:4: unknown entity &e; (only the five XML entities and character references are read)")
        #expect(error("<a>\n  <b></a>") == "2:6: </a> closes <b> (opened at 2:3)")
        #expect(error("<a x='1' x='2'/>") == "1:10: attribute x appears twice in <a>")
        #expect(error("<a>\u{1}</a>") == "1:4: character U+1 is not allowed in XML")
        #expect(error("<a>&#0;</a>")?.contains("not a character XML allows") == true)
        #expect(error("<a/><b/>") == "1:5: content after the root element")
        #expect(error("") == "1:1: no root element (the file is empty or holds only comments)")
        #expect(error("<?xml version='1.0' encoding='ISO-8859-1'?><a/>")?.contains("not supported") == true)
        #expect(try MiniXML.parse(Array("<a>x&amp;y<![CDATA[&z]]></a>".utf8)).text == "x&y&z")
        #expect(try MiniXML.parse(Array("<a v='1\n2&#10;3'/>".utf8)).attribute("v") == "1 2\n3")
        var bytes = Array("<a>".utf8)
        bytes += [0xC3, 0x28]
        bytes += Array("</a>".utf8)
        #expect((try? MiniXML.parse(bytes)) == nil, "malformed UTF-8")
        let deep = String(repeating: "<a>", count: 300) + String(repeating: "</a>", count: 300)
        #expect(error(deep)?.contains("nested deeper") == true)
    }

    // MARK: progress

    nonisolated(unsafe) static let progressLine = #/^progress: \d+/\d+ done, \d+ running( \(.+\))?, \d+ failed, \d+ errored, \d+s elapsed$/#

    @Test func progressOnANonTerminalIsPlainLinesWithPeriodicCounts() throws {
        let log = temporaryPath("stderr.log")
        let junit = temporaryPath("junit.xml")
        defer { unlink(log); unlink(junit) }
        let run = try Run.command([
            "/bin/sh", "-c", "SHM_HARNESS_PROGRESS_INTERVAL=0.3 exec \"$0\" run --leak-check own --junit \"$1\" \"$2\" 2>\"$3\"",
            Paths.harness, junit, Paths.fixtures + "/progress", log,
        ])
        #expect(run.exitCode == 0, "\(run.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
        #expect(!bytes.contains(0x0D) && !bytes.contains(0x1B), "no carriage return and no escape sequence in a log")
        #expect(!bytes.contains { $0 < 0x20 && $0 != 0x0A && $0 != 0x09 }, "no control character at all")
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        let periodic = lines.filter { $0.hasPrefix("progress:") }
        #expect(!periodic.isEmpty, "the 1.5 s testcase outlasts a 0.3 s period: \(lines)")
        for line in periodic { #expect(line.wholeMatch(of: Self.progressLine) != nil, "\(line)") }
        #expect(periodic.contains { $0.contains("running (scenarios.slow)") }, "\(periodic)")
        #expect(lines.filter { $0.hasPrefix("ok ") }.count == 5, "one line per finished testcase: \(lines)")
        try expectValid(junit)
    }

    @Test func progressOnATerminalIsLiveAndTheLogCheckSeesIt() throws {
        // Negative control for the test above: through a pseudo-terminal the runner draws its live line
        // (carriage returns, escape sequences) and prints no periodic line.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let junit = temporaryPath("junit.xml")
        defer { unlink(junit) }
        let command = "SHM_HARNESS_PROGRESS_INTERVAL=0.3 '\(Paths.harness)' run --leak-check own --junit '\(junit)' '\(Paths.fixtures)/progress'"
        let run = try Run.command(["/usr/bin/script", "-qec", command, "/dev/null"])
        #expect(run.exitCode == 0, "\(run.stderr)")
        #expect(run.stdout.contains("\r") && run.stdout.contains("\u{1B}[K"), "\(run.stdout.debugDescription)")
        #expect(!run.stdout.contains("progress:"))
    }

    @Test func aClosedStandardErrorPipeDoesNotStopTheRun() throws {
        let junit = temporaryPath("junit.xml")
        let status = temporaryPath("status")
        defer { unlink(junit); unlink(status) }
        // stderr is a pipe whose reader is gone before the runner writes: every progress write gets EPIPE.
        let run = try Run.command([
            "/bin/sh", "-c", "{ sleep 0.5; \"$0\" run --leak-check own --junit \"$1\" \"$2\" 2>&1 >/dev/null; echo $? >\"$3\"; } | exec 0<&-",
            Paths.harness, junit, Paths.fixtures + "/regression/wrong.yaml", status,
        ])
        let code = (try? String(contentsOfFile: status, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "none: the runner died (\(run.stderr))"
        #expect(code == "1", "the failing testcase decides the exit status, not the broken pipe")
        try expectValid(junit)
        #expect(try read(junit).cases.count == 1)
    }

    @Test func printableLeavesNoControlCharacter() {
        let raw = "name\u{1B}[31mred\r\u{7}\u{9B}x"
        #expect(raw.unicodeScalars.contains { $0.value < 0x20 })
        let shown = ProgressReporter.printable(raw)
        #expect(!shown.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        #expect(shown == "name\\u{1b}[31mred\\u{d}\\u{7}\\u{9b}x")
    }
}
