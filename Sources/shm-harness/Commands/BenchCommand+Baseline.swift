import ArgumentParser
import Foundation
import Harness
import JUnit

extension BenchCommand {
    func validateBaseline() throws {
        if let maxSlowdown {
            if baseline == nil { throw ValidationError("--max-slowdown needs --baseline OLD.json") }
            if Baseline.parseSlowdown(maxSlowdown) == nil { throw ValidationError("--max-slowdown must be a percentage such as 25%, not '\(maxSlowdown)'") }
        }
        if let baseline, !FileManager.default.isReadableFile(atPath: baseline) {
            throw ValidationError("--baseline \(baseline): cannot read the file")
        }
    }

    /// Prints each comparison; exit 1 when a variant regressed beyond --max-slowdown.
    func compareWithBaseline(_ results: [BenchResult], machine: BenchMachine, settings: BenchSettings, baseline: String) throws {
        let slowdown = maxSlowdown.flatMap(Baseline.parseSlowdown) ?? 0.25
        let old: Data
        do { old = try Data(contentsOf: URL(fileURLWithPath: baseline)) } catch {
            throw CommandFailure(message: "bench: cannot read the baseline \(baseline): \(error.localizedDescription)", exitCode: 2)
        }
        let new = Data(BenchResult.json(results, machine: machine, settings: settings).utf8)
        let outcome: BenchBaseline.Outcome
        do { outcome = try BenchBaseline.compare(new: new, newPath: "this run", old: old, oldPath: baseline, maxSlowdown: slowdown) } catch {
            throw CommandFailure(message: "bench: \(error)", exitCode: 2)
        }
        print("")
        print("against the baseline \(baseline) (ratio to the floor where there is one; at most \(Int((slowdown * 100).rounded()))% slower):")
        for line in BenchBaseline.lines(outcome, maxSlowdown: slowdown) { print("  " + line) }
        let regressions = outcome.regressions
        if !regressions.isEmpty {
            let named = regressions.map { "\($0.caseName) / \($0.variant) ×\(String(format: "%.2f", $0.ratio))" }.joined(separator: ", ")
            throw CommandFailure(message: "bench: \(regressions.count) variant(s) regressed against \(baseline): \(named)", exitCode: 1)
        }
    }
}
