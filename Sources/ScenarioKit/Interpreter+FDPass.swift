extension Interpreter {
    /// `send-fd` names a group that exists, can receive (a Swift or C worker) and is not the sender alone;
    /// `receive-fd` has a sender; a `share: pass` memfd is a worker's own (setup and `expect: memory` cannot
    /// reach it: the runner never holds it).
    mutating func checkDescriptorPassing(workers: [WorkerSpec], setup: [Step], expect: ScenarioExpectation, resources: [String: ResourceSpec]) {
        let groups = Dictionary(workers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var targeted = Set<String>()
        var pairs = Set<[String]>()
        for worker in workers {
            Self.walk(worker.steps) { step in
                guard case .sendFD(_, let to) = step.action else { return }
                if let target = groups[to], pairs.insert([worker.name, to].sorted()).inserted {
                    let sockets = worker.count * target.count
                    if sockets > Self.maxChannels {
                        reader.fail(at: step.location, "send-fd to: '\(to)' needs a socket pair for each of \(worker.count) × \(target.count) pairs of processes; at most \(Self.maxChannels) per pair of groups (every end is a descriptor the runner holds until the workers start)")
                    }
                }
                guard let target = groups[to] else {
                    reader.fail(at: step.location, "send-fd to: '\(to)' is not a worker group; groups: \(workers.map(\.name).joined(separator: ", "))")
                    return
                }
                if target.impl != .swift && target.impl != .c {
                    reader.fail(at: step.location, "send-fd to: '\(to)': an impl: \(target.impl.rawValue) worker cannot receive descriptors (Swift and C workers can)")
                } else if to == worker.name && worker.count == 1 {
                    reader.fail(at: step.location, "send-fd to: '\(to)' is this worker alone (count 1): a group sends to its other processes, and it has none")
                }
                targeted.insert(to)
            }
        }
        for worker in workers where !targeted.contains(worker.name) {
            Self.walk(worker.steps) { step in
                if case .receiveFD = step.action {
                    reader.fail(at: step.location, "receive-fd: no worker sends to '\(worker.name)' (send-fd: {res, to: \(worker.name)})")
                }
            }
        }
        for (id, resource) in resources where resource.share == .pass {
            Self.walk(setup) { step in
                if step.action.resource == id {
                    reader.fail(at: step.location, "'\(id)' has share: pass: a worker makes it (create) and sends it; setup runs in the runner, which never holds it")
                }
            }
            for check in expect.memory where check.resource == id {
                reader.fail(at: check.location, "'\(id)' has share: pass: the runner never holds it, so expect: memory cannot read it; check it in a worker")
            }
        }
    }

    /// Socket pairs one pair of groups may need (each is two descriptors in the runner until the workers start).
    static let maxChannels = 1024

    /// Every step, repeat bodies included.
    static func walk(_ steps: [Step], _ body: (Step) -> Void) {
        for step in steps {
            body(step)
            switch step.action {
            case .repeatTimes(_, let inner), .repeatFor(_, let inner): walk(inner, body)
            default: break
            }
        }
    }
}
