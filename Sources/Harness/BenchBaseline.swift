import Foundation

/// `shm-harness bench --baseline OLD.json [--max-slowdown 25%]`: this run's results against an earlier
/// `bench --json` file, per case and variant.
///
/// What is compared: a variant's `ratio_to_floor` (its minimum over the C floor's minimum, measured in the
/// same run, interleaved) when both files have one: the floor absorbs most of what differs between machines
/// and runs (CPU, frequency, load), so the comparison holds across CI runners. A variant without a ratio
/// (a case without a floor) compares its `min_ns`. The floor variants themselves are the reference and are
/// not compared. A case or variant absent from the baseline is noted, never failed; so is one that is
/// unavailable on either side.
public enum BenchBaseline {
    public struct Comparison: Sendable, Equatable {
        public var caseName: String
        public var variant: String
        /// `ratio_to_floor` or `min_ns`.
        public var metric: String
        public var old: Double
        public var new: Double
        public var regressed: Bool
        /// new / old: above 1 is slower.
        public var ratio: Double { new / old }
    }

    public struct Outcome: Sendable {
        public var comparisons: [Comparison] = []
        /// `case/variant: absent from the baseline` and the like.
        public var notes: [String] = []
        public var regressions: [Comparison] { comparisons.filter(\.regressed) }
    }

    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    struct Variant {
        var label: String
        var role: String
        var minNs: Double?
        var ratio: Double?
    }

    /// Cases by name, each with its variants by label, from a `bench --json` file's bytes.
    static func parse(_ data: Data, path: String) throws(FormatError) -> [String: [String: Variant]] {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FormatError(description: "\(path): not a bench --json file (not a JSON object)")
        }
        guard let cases = root["cases"] as? [[String: Any]] else {
            throw FormatError(description: "\(path): not a bench --json file (no \"cases\" list)")
        }
        var out: [String: [String: Variant]] = [:]
        for item in cases {
            guard let name = item["name"] as? String else { throw FormatError(description: "\(path): a case without \"name\"") }
            var variants: [String: Variant] = [:]
            for v in item["variants"] as? [[String: Any]] ?? [] {
                guard let label = v["label"] as? String else { continue }
                variants[label] = Variant(
                    label: label, role: v["role"] as? String ?? "", minNs: (v["min_ns"] as? NSNumber)?.doubleValue,
                    ratio: (v["ratio_to_floor"] as? NSNumber)?.doubleValue)
            }
            out[name] = variants
        }
        return out
    }

    public static func compare(new: Data, newPath: String, old: Data, oldPath: String, maxSlowdown: Double) throws(FormatError) -> Outcome {
        let now = try parse(new, path: newPath)
        let before = try parse(old, path: oldPath)
        var outcome = Outcome()
        for name in now.keys.sorted() {
            guard let oldCase = before[name] else {
                outcome.notes.append("\(name): absent from the baseline \(oldPath)")
                continue
            }
            for (label, variant) in now[name]!.sorted(by: { $0.key < $1.key }) where variant.role != "floor" {
                guard let was = oldCase[label] else {
                    outcome.notes.append("\(name) / \(label): absent from the baseline")
                    continue
                }
                let pair: (String, Double, Double)?
                if let a = variant.ratio, let b = was.ratio, a > 0, b > 0 {
                    pair = ("ratio_to_floor", b, a)
                } else if let a = variant.minNs, let b = was.minNs, a > 0, b > 0 {
                    pair = ("min_ns", b, a)
                } else {
                    pair = nil
                }
                guard let (metric, oldValue, newValue) = pair else {
                    outcome.notes.append("\(name) / \(label): no measurement on both sides (unavailable)")
                    continue
                }
                outcome.comparisons.append(Comparison(
                    caseName: name, variant: label, metric: metric, old: oldValue, new: newValue,
                    regressed: newValue > oldValue * (1 + maxSlowdown)))
            }
        }
        return outcome
    }

    /// One line per comparison: `lock-uncontended / library: ratio_to_floor 1.90 vs 1.20: ×1.58 REGRESSED`.
    public static func lines(_ outcome: Outcome, maxSlowdown: Double) -> [String] {
        outcome.comparisons.map { c in
            let mark = c.regressed ? "  REGRESSED (more than \(Int((maxSlowdown * 100).rounded()))% slower)" : ""
            return "\(c.caseName) / \(c.variant): \(c.metric) \(String(format: "%.3f", c.new)) vs \(String(format: "%.3f", c.old)) in the baseline: ×\(String(format: "%.3f", c.ratio))\(mark)"
        } + outcome.notes
    }
}
