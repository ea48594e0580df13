/// `shm-harness report summary`: what a person reads after a (sharded, repeated) run: totals, each failure and
/// error with its message, flaky testcases, the slowest testcases. As plain text for a log, or as Markdown for
/// `$GITHUB_STEP_SUMMARY` or a GitLab note (tables with escaped cells, failure details in `<details>`).
///
/// A testcase is flaky when it passed in one place and failed or erred in another (the same classname + name
/// across the files, or repeated in one file), or when its `<system-out>` carries `[[PROPERTY|flaky=true]]`
/// (`JUnitReader` also turns Surefire's `<flakyFailure>`/`<flakyError>` into that property).
public struct ReportSummary: Sendable {
    public struct Entry: Sendable {
        public var result: TestCaseResult
        public var file: String
        public var identifier: String { ReportMerge.identifier(result) }
    }

    public struct Flaky: Sendable {
        public var identifier: String
        /// Each outcome with the files it happened in, e.g. ("passed", ["a.xml"]), ("failed", ["b.xml"]).
        public var outcomes: [(word: String, files: [String])]
        public var marked: Bool
        /// Over the `run --repeat` runs the reports record (properties `passed_runs`, `failed_runs`,
        /// `errored_runs`): e.g. "passed 4 of 5 runs, failed 1"; nil when no report says.
        public var runs: String? = nil
    }

    public var files: [String]
    public var entries: [Entry]
    public var counts: [String: Int]
    public var time: Double
    public var problems: [Entry]
    public var flaky: [Flaky]
    public var slowest: [Entry]
    public var hosts: [String]

    public static let words = ["passed", "failed", "errored", "skipped"]

    public init(_ reports: [JUnitReport], slowest count: Int = 5) {
        files = reports.map(\.path)
        entries = reports.flatMap { report in report.cases.map { Entry(result: $0, file: report.path) } }
        counts = Dictionary(grouping: entries, by: { $0.result.status.word }).mapValues(\.count)
        time = entries.reduce(0) { $0 + $1.result.time }
        problems = entries.filter { ["failed", "errored"].contains($0.result.status.word) }
        var order: [String] = []
        var byTestcase: [String: [Entry]] = [:]
        for entry in entries {
            let key = ReportMerge.uniqueKey(classname: entry.result.classname, name: entry.result.name)
            if byTestcase[key] == nil { order.append(key) }
            byTestcase[key, default: []].append(entry)
        }
        flaky = order.compactMap { key in
            let group = byTestcase[key]!
            let words = Set(group.map(\.result.status.word))
            let mixed = words.contains("passed") && (words.contains("failed") || words.contains("errored"))
            let marked = group.contains { entry in
                entry.result.properties.contains { $0.name == "flaky" && ["true", "1", "yes"].contains($0.value.lowercased()) }
            }
            guard mixed || marked else { return nil }
            let outcomes = Self.words.compactMap { word -> (word: String, files: [String])? in
                let files = group.filter { $0.result.status.word == word }.map(\.file)
                return files.isEmpty ? nil : (word, files)
            }
            var flaky = Flaky(identifier: group[0].identifier, outcomes: outcomes, marked: marked)
            func total(_ name: String) -> Int? {
                let values = group.compactMap { entry in entry.result.properties.first { $0.name == name }.flatMap { Int($0.value) } }
                return values.isEmpty ? nil : values.reduce(0, +)
            }
            if let passed = total("passed_runs"), let runs = total("runs") {
                flaky.runs = "passed \(passed) of \(runs) runs, failed \(total("failed_runs") ?? 0), errored \(total("errored_runs") ?? 0)"
            }
            return flaky
        }
        slowest = Array(entries.filter { $0.result.time > 0 }.sorted { $0.result.time > $1.result.time }.prefix(max(0, count)))
        var seenHosts: [String] = []
        for report in reports {
            for suite in report.suites {
                if let host = suite.hostname, !seenHosts.contains(host) { seenHosts.append(host) }
            }
        }
        hosts = seenHosts
    }

    var totalsLine: String {
        Self.words.map { "\(counts[$0, default: 0]) \($0)" }.joined(separator: ", ")
    }

    /// How many problems are listed in full; the rest are counted.
    static let listed = 50
    /// How much of a failure's detail the Markdown form shows.
    static let detailLimit = 4000

    // MARK: text

    public func text() -> String {
        var out = "shm-harness report: \(entries.count) testcase(s) in \(files.count) file(s): \(totalsLine); \(Self.seconds(time)) in testcases\n"
        if !hosts.isEmpty { out += "hosts: \(hosts.joined(separator: ", "))\n" }
        if !problems.isEmpty {
            out += "\nfailed and errored (\(problems.count)):\n"
            for entry in problems.prefix(Self.listed) {
                let mark = entry.result.status.word == "failed" ? "FAIL " : "ERROR"
                out += "  \(mark) \(Self.plain(entry.identifier))  (\(Self.plain(entry.file)))\n"
                let message = Self.plain(Self.message(entry.result))
                if !message.isEmpty { out += "        " + message.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n        ") + "\n" }
            }
            if problems.count > Self.listed { out += "  ... and \(problems.count - Self.listed) more\n" }
        }
        if !flaky.isEmpty {
            out += "\nflaky (\(flaky.count)):\n"
            for item in flaky {
                out += "  \(Self.plain(item.identifier)): " + describe(item, plain: true) + "\n"
            }
        }
        if !slowest.isEmpty {
            out += "\nslowest:\n"
            for entry in slowest {
                let time = Self.seconds(entry.result.time)
                out += "  " + String(repeating: " ", count: max(0, 9 - time.count)) + time + "  " + Self.plain(entry.identifier) + "\n"
            }
        }
        return out
    }

    func describe(_ item: Flaky, plain: Bool) -> String {
        var parts = item.outcomes.map { outcome in
            let files = outcome.files.map { plain ? Self.plain($0) : Self.cell($0) }
            return "\(outcome.word) \(outcome.files.count == 1 ? "once" : "\(outcome.files.count) times") (\(Self.unique(files).joined(separator: ", ")))"
        }
        if item.marked { parts.append("marked flaky") }
        if let runs = item.runs { parts.append(plain ? runs : Self.cell(runs)) }
        return parts.joined(separator: "; ")
    }

    // MARK: Markdown

    public func markdown() -> String {
        let failed = counts["failed", default: 0]
        let errored = counts["errored", default: 0]
        var headline: String
        if entries.isEmpty {
            headline = "⚠️ shm-harness: no testcases"
        } else if failed + errored == 0 {
            headline = "✅ shm-harness: all \(entries.count - counts["skipped", default: 0]) testcases passed"
            if counts["skipped", default: 0] > 0 { headline += ", \(counts["skipped", default: 0]) skipped" }
        } else {
            headline = "❌ shm-harness: \(failed) failed, \(errored) errored"
        }
        var out = "### \(headline)\n\n"
        out += "\(entries.count) testcases in \(files.count) report(s)"
        if !hosts.isEmpty { out += " from \(hosts.count) host(s)" }
        out += ", \(Self.seconds(time)) in testcases.\n\n"
        out += "| Outcome | Testcases |\n|:--|--:|\n"
        for word in Self.words { out += "| \(word) | \(counts[word, default: 0]) |\n" }
        out += "| **total** | **\(entries.count)** |\n"
        if !problems.isEmpty {
            out += "\n#### Failed and errored (\(problems.count))\n\n"
            out += "| Outcome | Testcase | Message | Report |\n|:--|:--|:--|:--|\n"
            for entry in problems.prefix(Self.listed) {
                out += "| \(entry.result.status.word) | \(Self.cell(entry.identifier)) | \(Self.cell(Self.message(entry.result))) | \(Self.cell(entry.file)) |\n"
            }
            if problems.count > Self.listed { out += "\n... and \(problems.count - Self.listed) more.\n" }
            out += "\n"
            for entry in problems.prefix(Self.listed) {
                var detail = entry.result.detail.isEmpty ? Self.message(entry.result) : entry.result.detail
                if !entry.result.output.isEmpty { detail += "\n\n" + entry.result.output }
                if detail.count > Self.detailLimit { detail = String(detail.prefix(Self.detailLimit)) + "\n... (truncated)" }
                out += "<details><summary>\(Self.html(entry.result.status.word)): \(Self.html(entry.identifier)) (\(Self.html(entry.file)))</summary>\n\n"
                out += Self.fenced(detail) + "\n</details>\n\n"
            }
        }
        if !flaky.isEmpty {
            out += "\n#### Flaky (\(flaky.count))\n\n| Testcase | Outcomes |\n|:--|:--|\n"
            for item in flaky { out += "| \(Self.cell(item.identifier)) | \(describe(item, plain: false)) |\n" }
        }
        if !slowest.isEmpty {
            out += "\n#### Slowest\n\n| Testcase | Time |\n|:--|--:|\n"
            for entry in slowest { out += "| \(Self.cell(entry.identifier)) | \(Self.seconds(entry.result.time)) |\n" }
        }
        return out
    }

    // MARK: helpers

    static func message(_ result: TestCaseResult) -> String {
        switch result.status {
        case .failed(let message, _), .errored(let message, _), .skipped(let message): message
        case .passed: ""
        }
    }

    static func seconds(_ value: Double) -> String {
        let centis = Int((max(0, value) * 100).rounded())
        let fraction = String(centis % 100)
        return "\(centis / 100)." + String(repeating: "0", count: 2 - fraction.count) + fraction + "s"
    }

    static func unique(_ items: [String]) -> [String] {
        var seen: [String] = []
        for item in items where !seen.contains(item) { seen.append(item) }
        return seen
    }

    /// Text for a terminal or a CI log: control characters (ESC, CR, ...) become visible escapes. (The
    /// runner's progress lines use it too.)
    public static func plain(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar == "\n" || scalar == "\t" || !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)) {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out
    }

    /// A Markdown table cell: the ASCII punctuation that inline Markdown, GitHub or HTML could read is
    /// backslash-escaped (`|` cannot end the cell, `<` and `&` open no tag or entity, `*` `_` `~` `` ` `` `[`
    /// format or link nothing, `$` starts no math, `@` mentions nobody), newlines become `<br>`, control
    /// characters are shown as `\u{..}`.
    static func cell(_ text: String) -> String {
        var out = ""
        for scalar in plain(text).unicodeScalars {
            switch scalar {
            case "\n": out += "<br>"
            case "\t": out += " "
            case "\\", "`", "*", "_", "[", "]", "<", ">", "|", "~", "&", "$", "@":
                out += "\\"
                out.unicodeScalars.append(scalar)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Text inside an HTML element (`<summary>`).
    static func html(_ text: String) -> String {
        var out = ""
        for scalar in plain(text).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\n", "\t": out += " "
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A fenced code block whose fence is longer than any run of backticks in the text.
    static func fenced(_ text: String) -> String {
        var longest = 0
        var run = 0
        for character in text {
            run = character == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        return fence + "text\n" + plain(text) + "\n" + fence + "\n"
    }
}
