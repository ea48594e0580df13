import Foundation
import JUnit
import ScenarioKit

/// `run --repeat N` / `--until-failure`: each testcase's runs folded into one JUnit `<testcase>`.
///
/// - every run passed: passed; every run skipped: skipped; no run passed: the first problem (failed or
///   errored), its message saying how many runs failed;
/// - some passed and some failed or erred: **flaky**. By default a `<failure type="flaky">` whose message
///   gives the counts (every JUnit viewer shows it, and it fails the run); with `--flaky-ok` a passed testcase
///   marked with the property `flaky=true`. Either way `<system-out>` has `[[PROPERTY|flaky=true]]`, the
///   counts as properties (`runs`, `passed_runs`, `failed_runs`, `errored_runs`, `skipped_runs`) and one line
///   per run with its outcome, its seed and (for a failure) the command that replays it.
public enum Repetition {
    /// One run of one testcase.
    public struct Run: Sendable {
        public var repetition: Int
        public var runSeed: UInt64
        public var result: TestCaseResult
    }

    /// Metrics folded as the median over the runs that report them.
    static let medianMetrics: Set<String> = [
        "operations_per_second", "lock_p50_ns", "lock_p90_ns", "lock_p99_ns", "lock_max_ns",
    ]

    public static func fold(_ runs: [Run], flakyOK: Bool) -> TestCaseResult {
        let sorted = runs.sorted { $0.repetition < $1.repetition }
        guard var result = sorted.first?.result else { preconditionFailure("a testcase without runs") }
        let count = { (word: String) in sorted.filter { $0.result.status.word == word }.count }
        let passed = count("passed"), failed = count("failed"), errored = count("errored"), skipped = count("skipped")
        let problems = sorted.filter { ["failed", "errored"].contains($0.result.status.word) }
        result.time = sorted.reduce(0) { $0 + $1.result.time }

        // Properties: the first run's, numeric metrics as medians, chaos's per run (in the run lines).
        var properties = result.properties.filter { !$0.name.hasPrefix("chaos.") && $0.name != "rerun" }
        for index in properties.indices where medianMetrics.contains(properties[index].name) {
            let name = properties[index].name
            let values = sorted.compactMap { run in run.result.properties.first { $0.name == name }.flatMap { Double($0.value) } }.sorted()
            if !values.isEmpty { properties[index].value = String(Int(values[values.count / 2].rounded())) }
        }
        properties += [("runs", "\(sorted.count)"), ("passed_runs", "\(passed)"), ("failed_runs", "\(failed)"),
                       ("errored_runs", "\(errored)"), ("skipped_runs", "\(skipped)")]
        let counts = "\(passed) of \(sorted.count) runs passed, \(failed) failed, \(errored) errored"
        var detail = ""
        if let first = problems.first {
            switch first.result.status {
            case .failed(let message, _), .errored(let message, _):
                detail = "first failure (run \(first.repetition) of \(sorted.count)):\n" + (first.result.detail.isEmpty ? message : first.result.detail)
            default: break
            }
        }
        let flaky = passed > 0 && !problems.isEmpty
        if flaky {
            properties.append(("flaky", "true"))
            if flakyOK {
                result.status = .passed
            } else {
                result.status = .failed(message: "flaky: \(counts); first failure (run \(problems[0].repetition)): \(message(problems[0].result))", type: "flaky")
            }
            result.detail = detail
        } else if let first = problems.first {
            switch first.result.status {
            case .failed(let text, let type): result.status = .failed(message: "\(text) (\(counts))", type: type)
            case .errored(let text, let type): result.status = .errored(message: "\(text) (\(counts))", type: type)
            default: break
            }
            result.detail = detail
        } else if skipped == sorted.count {
            result.status = sorted[0].result.status
        } else {
            result.status = .passed
        }
        result.properties = properties
        // One line per run, then the first problem's (or the first run's) worker output.
        var lines = sorted.map { run -> String in
            var line = "run \(run.repetition): \(run.result.status.word) (\(String(format: "%.3f", run.result.time))s, seed \(run.runSeed))"
            if let kills = chaosSummary(run.result) { line += " " + kills }
            switch run.result.status {
            case .failed(let text, _), .errored(let text, _):
                line += ": " + (text.split(separator: "\n").first.map(String.init) ?? "")
                if let rerun = run.result.properties.first(where: { $0.name == "rerun" })?.value { line += "\n  re-run: " + rerun }
            default: break
            }
            return line
        }
        if flaky && flakyOK { lines.append(detail) }
        let output = (problems.first ?? sorted[0]).result.output
        result.output = (lines + (output.isEmpty ? [] : [output])).joined(separator: "\n")
        return result
    }

    static func message(_ result: TestCaseResult) -> String {
        switch result.status {
        case .failed(let text, _), .errored(let text, _), .skipped(let text): text
        case .passed: ""
        }
    }

    /// `[kills: victim/0 SIGKILL at 12.3ms]` from a run's chaos properties.
    static func chaosSummary(_ result: TestCaseResult) -> String? {
        let kills = result.properties.filter { $0.name.hasPrefix("chaos.kill.") }.map(\.value)
        return kills.isEmpty ? nil : "[chaos: " + kills.joined(separator: "; ") + "]"
    }

    /// The command that runs just this testcase again with the seed of the run that failed: its file, and its
    /// name within the file as the filter (the classname depends on the folder the run was given, the name does not).
    public static func rerunCommand(file: String, testName: String, runSeed: UInt64, jitter: Duration?) -> String {
        var glob = ""
        for character in testName {
            if "[]*?\\".contains(character) { glob.append("\\") }
            glob.append(character)
        }
        var command = "shm-harness run \(shellQuoted(file)) --filter \(shellQuoted(glob)) --seed \(runSeed)"
        if let jitter { command += " --jitter \(DurationText.format(jitter))" }
        return command
    }

    static func shellQuoted(_ text: String) -> String {
        let safe = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-=,+:@%".contains($0)) }
        return safe && !text.isEmpty ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
