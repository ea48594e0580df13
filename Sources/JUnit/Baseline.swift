import Foundation

/// `run --baseline OLD.xml [--max-slowdown 25%]`: each testcase's metrics against the same testcase
/// (classname + name) of an earlier report.
///
/// Compared: `operations_per_second` (throughput; slower when it drops) and `lock_p99_ns` (p99 lock latency;
/// slower when it grows). The ratios are written as properties (`baseline.operations_per_second_ratio`,
/// `baseline.lock_p99_ns_ratio`: new / old); a testcase that passed fails (type `baseline`) when either
/// regressed by more than the allowed slowdown: throughput below old / (1 + s), or p99 above old × (1 + s).
/// A testcase absent from the baseline, or without the metric on either side, is noted (`baseline=absent`,
/// `baseline=no-metrics`), never failed.
public enum Baseline {
    public struct Metric: Sendable {
        public var name: String
        /// Whether a larger value is better (throughput) or worse (latency).
        public var higherIsBetter: Bool
    }

    public static let metrics = [
        Metric(name: "operations_per_second", higherIsBetter: true),
        Metric(name: "lock_p99_ns", higherIsBetter: false),
    ]

    /// `25%` or `0.25` or `25` (percent); nil when not a number >= 0.
    public static func parseSlowdown(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let percent = trimmed.hasSuffix("%")
        guard let value = Double(percent ? String(trimmed.dropLast()) : trimmed), value.isFinite, value >= 0, value <= 1_000_000 else { return nil }
        return percent || value >= 1 ? value / 100 : value
    }

    /// `results` with the comparison written in (and regressions failed).
    public static func compare(_ results: [TestCaseResult], with baseline: JUnitReport, maxSlowdown: Double) -> [TestCaseResult] {
        var old: [String: TestCaseResult] = [:]
        for result in baseline.cases { old[ReportMerge.uniqueKey(classname: result.classname, name: result.name)] = result }
        let limit = 1 + maxSlowdown
        return results.map { result in
            var result = result
            guard let before = old[ReportMerge.uniqueKey(classname: result.classname, name: result.name)] else {
                result.properties.append(("baseline", "absent"))
                return result
            }
            var regressions: [String] = []
            var compared = 0
            for metric in metrics {
                guard let new = value(metric.name, in: result), let was = value(metric.name, in: before), new > 0, was > 0 else { continue }
                compared += 1
                let ratio = new / was
                result.properties.append(("baseline.\(metric.name)_ratio", String(format: "%.3g", ratio)))
                let slowdown = metric.higherIsBetter ? was / new : new / was
                if slowdown > limit {
                    regressions.append(
                        "\(metric.name) \(format(new)) vs \(format(was)) in \(baseline.path): ratio \(String(format: "%.3g", ratio)) (\(String(format: "%.2f", slowdown))× slower; at most \(String(format: "%.2f", limit))× allowed by --max-slowdown \(Int((maxSlowdown * 100).rounded()))%)")
                }
            }
            result.properties.append(("baseline", compared == 0 ? "no-metrics" : (regressions.isEmpty ? "ok" : "regressed")))
            if !regressions.isEmpty {
                let message = "regressed against the baseline: " + regressions.joined(separator: "; ")
                result.detail += (result.detail.isEmpty ? "" : "\n") + message
                if result.status == .passed { result.status = .failed(message: message, type: "baseline") }
            }
            return result
        }
    }

    static func value(_ name: String, in result: TestCaseResult) -> Double? {
        result.properties.first { $0.name == name }.flatMap { Double($0.value) }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.3f", value)
    }
}
