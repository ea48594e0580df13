import Yams

/// Outcome counting in scenario files: `expect-error: [none, already-exists]`, `count: NAME` on a step, and
/// `expect: outcomes: NAME: { ok: 1, already-exists: 63 }` (docs/scenario-format.md, "Counting outcomes").
extension Interpreter {
    /// `expect-error: [none, NAME, ...]`: error names and `none` (success), each once.
    mutating func outcomeList(_ node: Node) -> [String]? {
        guard let items = reader.list(node, "expect-error") else { return nil }
        if items.isEmpty {
            reader.fail(node, "expect-error: [] accepts nothing; list the outcomes the step may end in (none for success)")
            return nil
        }
        var names: [String] = []
        for item in items {
            guard let name = reader.string(item, "an outcome") else { continue }
            guard name == OutcomeName.success || Self.errorNames.contains(name) else {
                reader.fail(item, "unknown outcome '\(name)'; expected none (success) or one of: \(Self.errorNames.joined(separator: ", "))")
                continue
            }
            if names.contains(name) { reader.fail(item, "outcome '\(name)' is listed twice") }
            names.append(name)
        }
        return names.isEmpty ? nil : names
    }

    /// `count: NAME`: letters, digits, `-`, `_` (it becomes part of a plan line and a report property).
    mutating func counterName(_ node: Node) -> String? {
        guard let name = reader.string(node, "count") else { return nil }
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            reader.fail(node, "a counter name is a plain word (letters, digits, - and _), not '\(name)'")
            return nil
        }
        return reader.checkName(name, "the counter name", node) ? name : nil
    }

    /// `outcomes: { NAME: { OUTCOME: N | {min: N, max: M}, ... } }`.
    mutating func outcomeExpectations(_ node: Node) -> [OutcomeExpectation] {
        guard let counters = reader.mapping(node, "outcomes", allowed: [String](anyKeys: node)) else { return [] }
        var result: [OutcomeExpectation] = []
        for counter in counters {
            guard let name = counterName(counter.keyNode) else { continue }
            guard let entries = reader.mapping(counter.value, "outcomes of '\(name)'", allowed: [String](anyKeys: counter.value)) else { continue }
            if entries.isEmpty { reader.fail(counter.value, "outcomes of '\(name)': list at least one outcome (ok, or an error name) with its count") }
            var counts: [(outcome: String, bound: OutcomeExpectation.Bound)] = []
            for entry in entries {
                let outcome = entry.key
                guard outcome == OutcomeName.ok || Self.errorNames.contains(outcome) else {
                    reader.fail(entry.keyNode, "unknown outcome '\(outcome)'; expected ok or one of: \(Self.errorNames.joined(separator: ", "))" + (outcome == OutcomeName.success ? " (a success is tallied as ok)" : ""))
                    continue
                }
                if let bound = outcomeBound(entry.value, outcome) { counts.append((outcome, bound)) }
            }
            result.append(OutcomeExpectation(name: name, counts: counts, location: reader.location(counter.keyNode)))
        }
        return result
    }

    /// `N` (exactly), or `{min: N}`, `{max: M}`, `{min: N, max: M}`.
    mutating func outcomeBound(_ node: Node, _ outcome: String) -> OutcomeExpectation.Bound? {
        if case .mapping = node {
            guard let fields = reader.mapping(node, "the count of \(outcome)", allowed: ["min", "max"]) else { return nil }
            let args = Arguments(fields)
            if fields.isEmpty { reader.fail(node, "give min:, max: or both (or a number: exactly)") }
            let low = args["min"].flatMap { reader.int($0, "min", range: 0...Int.max) } ?? 0
            let high = args["max"].flatMap { reader.int($0, "max", range: 0...Int.max) }
            if let high, high < low { reader.fail(node, "max \(high) is less than min \(low)") }
            return OutcomeExpectation.Bound(min: low, max: high)
        }
        return reader.int(node, "the count of \(outcome)", range: 0...Int.max).map { OutcomeExpectation.Bound(min: $0, max: $0) }
    }

    /// Every counter `expect: outcomes:` names is tallied by some step, and each outcome it lists is one such a
    /// step may end in (a typo would otherwise be a count that is always 0).
    mutating func checkOutcomes(_ expectations: [OutcomeExpectation], workers: [WorkerSpec], setup: [Step]) {
        var accepted: [String: Set<String>] = [:]
        func walk(_ steps: [Step]) {
            for step in steps {
                if let name = step.count { accepted[name, default: []].formUnion(step.acceptedOutcomes) }
                switch step.action {
                case .repeatTimes(_, let body), .repeatFor(_, let body): walk(body)
                default: break
                }
            }
        }
        for worker in workers { walk(worker.steps) }
        // Qt's lock() cannot be abandoned: a timed lock that may end in lock-error or succeed has no Qt form (a
        // lock that must end in lock-error is made in a child process; any other is ended with the worker).
        func qtLocks(_ steps: [Step]) {
            for step in steps {
                switch step.action {
                case .lock where step.outcomes?.contains("lock-error") == true && step.outcomes!.count > 1:
                    reader.fail(at: step.location, "impl: qt cannot run a lock that may end either way (expect-error: \(step.expectationText ?? "")): Qt's lock() has no timeout and cannot be abandoned")
                case .acquire where step.outcomes?.contains("lock-error") == true && step.outcomes!.count > 1:
                    reader.fail(at: step.location, "impl: qt cannot run an acquire that may end either way (expect-error: \(step.expectationText ?? "")): QSystemSemaphore's acquire() has no timeout and cannot be abandoned")
                case .repeatTimes(_, let body), .repeatFor(_, let body): qtLocks(body)
                default: break
                }
            }
        }
        for worker in workers where worker.impl == .qt { qtLocks(worker.steps) }
        for expectation in expectations {
            guard let outcomes = accepted[expectation.name] else {
                reader.fail(at: expectation.location, "no worker step counts '\(expectation.name)' (add count: \(expectation.name) to a step)" + (accepted.isEmpty ? "" : "; counted: \(accepted.keys.sorted().joined(separator: ", "))"))
                continue
            }
            for (outcome, _) in expectation.counts where !outcomes.contains(outcome) {
                reader.fail(at: expectation.location, "'\(expectation.name)' can never be \(outcome): the steps that count it accept \(outcomes.sorted().joined(separator: ", ")) (expect-error)")
            }
        }
        var seen = Set<String>()
        for expectation in expectations where !seen.insert(expectation.name).inserted {
            reader.fail(at: expectation.location, "outcomes of '\(expectation.name)' are given twice")
        }
        func setupCounts(_ steps: [Step]) {
            for step in steps where step.count != nil {
                reader.fail(at: step.location, "count: tallies a worker's steps; setup runs in the runner and is not counted")
            }
        }
        setupCounts(setup)
    }
}
