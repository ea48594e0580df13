import Yams

extension Interpreter {
    /// How many steps `steps` execute, counted statically: `repeat: N` multiplies its body, `repeat: { for: D }`
    /// counts its body once (the scenario's timeout bounds it). Saturates at `Int.max`.
    static func executedSteps(_ steps: [Step]) -> Int {
        var total = 0
        for step in steps {
            let count: Int
            switch step.action {
            case .repeatTimes(let times, let body):
                let product = executedSteps(body).multipliedReportingOverflow(by: times)
                count = product.overflow ? Int.max : product.partialValue
            case .repeatFor(_, let body):
                count = executedSteps(body)
            default:
                count = 1
            }
            let sum = total.addingReportingOverflow(count)
            total = sum.overflow ? Int.max : sum.partialValue
        }
        return total
    }

    /// Refuses a list of steps that would execute more than ``ScenarioLimits/executedSteps`` steps.
    mutating func checkExecutedSteps(_ steps: [Step], node: Node, what: String) {
        let count = Self.executedSteps(steps)
        let limit = ScenarioLimits.executedSteps
        guard count > limit else { return }
        let shown = count == Int.max ? "more than \(Int.max)" : "\(count)"
        reader.fail(node, "\(what) would execute \(shown) steps (repeat counts multiply); at most \(limit)")
    }
}
