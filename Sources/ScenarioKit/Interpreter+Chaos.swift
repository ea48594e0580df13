import Yams

extension Interpreter {
    static let chaosKeys = ["kill", "member", "signal", "window"]
    static let startDelayKeys = ["max"]

    /// `chaos: [{kill: GROUP, member: random|all, signal: SIGKILL, window: [10ms, 200ms]}]`.
    mutating func chaosKills(_ node: Node, workers: [WorkerSpec], timeout: Duration) -> [ChaosKill] {
        guard let items = reader.list(node, "chaos") else { return [] }
        var kills: [ChaosKill] = []
        for item in items {
            guard let entries = reader.mapping(item, "a chaos entry", allowed: Self.chaosKeys) else { continue }
            func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
            guard let groupNode = value("kill") else {
                reader.fail(item, "a chaos entry needs kill: (the name of a worker group)")
                continue
            }
            guard let group = reader.string(groupNode, "kill") else { continue }
            guard workers.contains(where: { $0.name == group }) else {
                reader.fail(groupNode, "chaos kill: no worker group '\(group)'; the groups are: \(workers.map(\.name).joined(separator: ", "))")
                continue
            }
            var member = ChaosKill.Member.random
            if let node = value("member") { member = reader.choice(node, "chaos member", as: ChaosKill.Member.self) ?? member }
            var signal = Signals.number("SIGKILL")!
            if let node = value("signal"), let text = reader.string(node, "signal") {
                if let number = Signals.number(text) {
                    signal = number
                } else {
                    reader.fail(node, "unknown signal '\(text)'; expected one of: \(Signals.table.map(\.0).joined(separator: ", "))")
                }
            }
            guard let windowNode = value("window") else {
                reader.fail(item, "a chaos entry needs window: [FROM, TO] (durations since the workers started, e.g. [10ms, 200ms])")
                continue
            }
            guard case .sequence(let bounds) = windowNode, bounds.count == 2 else {
                reader.fail(windowNode, "window must be a list of two durations [FROM, TO], e.g. [10ms, 200ms]")
                continue
            }
            guard let from = reader.duration(bounds[0], "the window's start"), let to = reader.duration(bounds[1], "the window's end") else { continue }
            if to < from {
                reader.fail(bounds[1], "the window ends (\(DurationText.format(to))) before it starts (\(DurationText.format(from)))")
                continue
            }
            if to >= timeout {
                reader.fail(bounds[1], "the window ends at \(DurationText.format(to)), not before the scenario's timeout (\(DurationText.format(timeout)))")
                continue
            }
            kills.append(ChaosKill(group: group, member: member, signal: signal, from: from, to: to, location: reader.location(item)))
        }
        return kills
    }

    /// `start-delay: {max: 20ms}`: each worker starts after a random delay in [0, max].
    mutating func startDelay(_ node: Node, timeout: Duration) -> Duration? {
        guard let entries = reader.mapping(node, "start-delay", allowed: Self.startDelayKeys) else { return nil }
        guard let maxNode = entries.first(where: { $0.key == "max" })?.value else {
            reader.fail(node, "start-delay needs max: (a duration, e.g. 20ms)")
            return nil
        }
        guard let max = reader.duration(maxNode, "start-delay max") else { return nil }
        if max >= timeout {
            reader.fail(maxNode, "start-delay max \(DurationText.format(max)) is not shorter than the scenario's timeout (\(DurationText.format(timeout)))")
            return nil
        }
        return max
    }
}
