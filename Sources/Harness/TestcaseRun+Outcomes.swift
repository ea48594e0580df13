import ScenarioKit

/// Outcome counting (docs/scenario-format.md, "Counting outcomes"): the tallies of `count:` steps, summed over
/// every worker that reported a result, checked against `expect: outcomes:` and reported as properties.
extension TestcaseRun {
    /// counter -> outcome -> how many times, over every worker's result line.
    var outcomeTallies: [String: [String: Int]] {
        var total: [String: [String: Int]] = [:]
        for worker in workers {
            for (name, tally) in worker.result?.outcomes ?? [:] {
                for (outcome, n) in tally { total[name, default: [:]][outcome, default: 0] += n }
            }
        }
        return total
    }

    /// Workers that ended without a result line (killed, crashed on purpose): their tallies are not in the sum.
    private var unreported: [String] { workers.filter { $0.result == nil }.map(\.label) }

    func checkOutcomes() {
        let expectations = scenario.expect.outcomes
        guard !expectations.isEmpty else { return }
        let totals = outcomeTallies
        for expectation in expectations {
            let tally = totals[expectation.name] ?? [:]
            let problems = expectation.problems(tally)
            guard !problems.isEmpty else { continue }
            let seen = tally.isEmpty ? "nothing" : tally.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            var message = "expect outcomes \(expectation.name) (\(expectation.location)): " + problems.joined(separator: "; ") + " (counted: \(seen))"
            let missing = unreported
            if !missing.isEmpty { message += "; not counted: \(missing.count) worker(s) without a result (\(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? ", ..." : ""))" }
            self.problems.append((.failure, message))
        }
    }

    /// `outcome.NAME.OUTCOME=N` for every tally, and 0 for an expected outcome that never happened.
    func outcomeProperties() -> [(name: String, value: String)] {
        var totals = outcomeTallies
        for expectation in scenario.expect.outcomes {
            for (outcome, _) in expectation.counts where totals[expectation.name]?[outcome] == nil {
                totals[expectation.name, default: [:]][outcome] = 0
            }
        }
        return totals.sorted { $0.key < $1.key }.flatMap { name, tally in
            tally.sorted { $0.key < $1.key }.map { (name: "outcome.\(name).\($0.key)", value: "\($0.value)") }
        }
    }
}
