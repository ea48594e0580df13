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

    /// Steps as written: a repeat and each step of its body once.
    static func writtenSteps(_ steps: [Step]) -> Int {
        steps.reduce(0) { total, step in
            switch step.action {
            case .repeatTimes(_, let body), .repeatFor(_, let body): total + 1 + writtenSteps(body)
            default: total + 1
            }
        }
    }

    /// Refuses workers whose plans (one per process) would hold more than ``ScenarioLimits/plannedSteps`` lines.
    mutating func checkPlannedSteps(_ workers: [WorkerSpec], node: Node?) {
        var total = 0
        for worker in workers {
            let product = Self.writtenSteps(worker.steps).multipliedReportingOverflow(by: worker.count)
            let sum = total.addingReportingOverflow(product.overflow ? Int.max : product.partialValue)
            total = sum.overflow ? Int.max : sum.partialValue
        }
        let limit = ScenarioLimits.plannedSteps
        guard total > limit else { return }
        reader.fail(node, "the workers' plans would hold \(total) steps (each worker process gets its own plan: steps × count); at most \(limit)")
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
