import Foundation
import JUnit
import ScenarioKit

#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: small, fast and the same on every machine (Swift's SystemRandomNumberGenerator cannot be seeded).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Where a run's random choices come from. The run has one seed (printed, and written into the report as the
/// property `harness.seed`); repetition R of a `--repeat` run uses its own run seed (R = 1: the run's seed),
/// and each testcase's choices come from its run seed and its name (with its matrix combination) alone, so
/// `run FILE --seed S --filter NAME` replays exactly one testcase whatever else runs, in whatever order, with any
/// `--jobs`, and whichever folder the run was given (which decides the classname).
public enum ChaosSeed {
    /// A fresh seed for a run that was given none.
    public static func fresh() -> UInt64 { UInt64.random(in: 1...UInt64(Int64.max)) }

    /// The run seed of repetition `repetition` (1-based) of a run with seed `seed`.
    public static func repetition(_ repetition: Int, of seed: UInt64) -> UInt64 {
        guard repetition > 1 else { return seed }
        var random = SeededRandom(seed: seed ^ (UInt64(repetition) &* 0xD6E8_FEB8_6659_FD93))
        return random.next() & UInt64(Int64.max)
    }

    /// A testcase's own seed under run seed `seed` (`testName`: the name with its matrix combination).
    public static func testcase(_ testName: String, runSeed seed: UInt64) -> UInt64 {
        var random = SeededRandom(seed: seed ^ Runner.stableHash(testName))
        return random.next()
    }
}

/// What chaos does to one testcase, decided before its first worker starts.
struct ChaosPlan: Sendable {
    struct Kill: Sendable {
        var group: String
        var members: [Int]
        var signal: Int32
        /// Since the last worker was started.
        var at: Duration
    }

    var seed: UInt64
    /// (group, index) to the delay before that worker starts (zero without start-delay or --jitter).
    var startDelays: [String: Duration] = [:]
    var kills: [Kill] = []

    init(scenario: Scenario, seed: UInt64, jitter: Duration?) {
        self.seed = seed
        var random = SeededRandom(seed: seed)
        // Delays first, in the workers' order, then the kills in the file's order: a fixed order of draws.
        let maxDelay = [scenario.startDelay, jitter].compactMap { $0 }.max()
        if let maxDelay, maxDelay > .zero {
            for spec in scenario.workers {
                for index in 0..<spec.count {
                    let ns = Int64.random(in: 0...maxDelay.nanoseconds, using: &random)
                    startDelays["\(spec.name)/\(index)"] = .nanoseconds(ns)
                }
            }
        }
        for kill in scenario.chaos {
            guard let spec = scenario.workers.first(where: { $0.name == kill.group }), spec.count > 0 else { continue }
            let members = kill.member == .all ? Array(0..<spec.count) : [Int.random(in: 0..<spec.count, using: &random)]
            let ns = Int64.random(in: kill.from.nanoseconds...kill.to.nanoseconds, using: &random)
            kills.append(Kill(group: kill.group, members: members, signal: kill.signal, at: .nanoseconds(ns)))
        }
    }

    var isEmpty: Bool { startDelays.isEmpty && kills.isEmpty }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.1fms", Double(duration.nanoseconds) / 1e6)
    }

    /// The plan as report properties: the same seed gives the same properties.
    var properties: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = [("chaos.seed", "\(seed)")]
        for (n, kill) in kills.enumerated() {
            let who = kill.members.map { "\(kill.group)/\($0)" }.joined(separator: ",")
            out.append(("chaos.kill.\(n + 1)", "\(who) \(Signals.name(kill.signal)) at \(Self.milliseconds(kill.at))"))
        }
        if !startDelays.isEmpty {
            let text = startDelays.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.milliseconds($0.value))" }.joined(separator: " ")
            out.append(("chaos.start_delays", text))
        }
        return out
    }
}

/// The runner's side of chaos in one testcase: start workers after their delays, send the planned kills, and
/// accept a worker's death by a signal the runner itself sent.
struct ChaosState {
    var plan: ChaosPlan
    /// When the last worker was started (the zero of the kill windows).
    var started: Date?
    /// Kills not sent yet, soonest first.
    var pending: [ChaosPlan.Kill]
    /// Worker label to the signal chaos sent it while it ran.
    var delivered: [String: Int32] = [:]
    /// What happened, for the testcase's output.
    var log: [String] = []

    init(plan: ChaosPlan) {
        self.plan = plan
        pending = plan.kills.sorted { $0.at < $1.at }
    }

    /// Seconds until the next kill is due (nil: none left).
    func nextDue(now: Date = Date()) -> Double? {
        guard let started, let first = pending.first else { return nil }
        return max(0, started.addingTimeInterval(first.at.seconds).timeIntervalSince(now))
    }
}

extension TestcaseRun {
    /// Starts the prepared workers, each after its planned delay (in the order of the delays), and keeps the
    /// workers in the file's order.
    func startPending(_ pending: [PendingWorker]) throws {
        let zero = Date()
        let ordered = pending.enumerated().sorted { a, b in
            let da = chaos.plan.startDelays[a.element.label] ?? .zero
            let db = chaos.plan.startDelays[b.element.label] ?? .zero
            return da == db ? a.offset < b.offset : da < db
        }
        var started: [(Int, Worker)] = []
        defer { workers = started.sorted { $0.0 < $1.0 }.map(\.1) }
        for (offset, item) in ordered {
            if let delay = chaos.plan.startDelays[item.label] {
                let left = zero.addingTimeInterval(delay.seconds).timeIntervalSinceNow
                if left > 0 { usleep(useconds_t(left * 1e6)) }
            }
            let process = try SpawnedProcess(
                label: item.label, arguments: item.arguments, environment: item.environment, inherit: item.inherit,
                descriptorLimit: scenario.limits?.nofile)
            started.append((offset, Worker(group: item.spec.name, index: item.index, spec: item.spec, process: process, barriersNamed: item.barriers)))
        }
        chaos.started = Date()
    }

    /// Sends the kills that are due; a member that has ended already is noted, not signalled.
    func fireDueKills() {
        while let due = chaos.nextDue(), due <= 0 {
            let kill = chaos.pending.removeFirst()
            for member in kill.members {
                guard let i = workers.firstIndex(where: { $0.group == kill.group && $0.index == member }) else { continue }
                let label = workers[i].label
                let when = ChaosPlan.milliseconds(kill.at)
                if workers[i].process.status == nil && workers[i].process.poll() == nil {
                    kill_(workers[i].process.pid, kill.signal)
                    chaos.delivered[label] = kill.signal
                    chaos.log.append("chaos: sent \(Signals.name(kill.signal)) to \(label) at \(when)")
                } else {
                    chaos.log.append("chaos: \(label) had ended before \(when); no \(Signals.name(kill.signal)) sent")
                }
            }
        }
    }

    /// A worker that died of the signal chaos sent it ended as planned.
    func endedByChaos(_ i: Int) -> Bool {
        guard let sent = chaos.delivered[workers[i].label], let status = workers[i].process.status else { return false }
        return SpawnedProcess.signal(status) == sent
    }
}

private func kill_(_ pid: pid_t, _ signal: Int32) { _ = kill(pid, signal) }

/// A worker ready to start: what `spawnWorkers` prepared.
struct PendingWorker {
    var spec: WorkerSpec
    var index: Int
    var arguments: [String]
    var environment: [String: String]
    var inherit: [Int32]
    var barriers: Set<String>
    var label: String { "\(spec.name)/\(index)" }
}
