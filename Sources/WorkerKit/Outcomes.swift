/// Outcome counting: a step may accept several outcomes (`expect-error: [none, already-exists]`) and tally
/// the one it ended in (`count: NAME`); the runner sums the tallies of every worker and checks
/// `expect: { outcomes: { NAME: { ok: 1, already-exists: 63 } } }`.
public enum OutcomeName {
    /// The tally name of a step that succeeded (`none` in an `expect-error` list).
    public static let ok = "ok"
    /// `none` in an `expect-error` list: the step may succeed.
    public static let success = "none"
    /// The error names of the contract (the library's `SharedMemoryError.Code.name` list): what `expect-error`
    /// and the outcome lists may name, in scenarios and in plans alike.
    public static let errorNames = [
        "permission-denied", "invalid-size", "key-error", "already-exists", "not-found", "lock-error",
        "out-of-resources", "busy", "sealed", "bus-error", "owner-died", "unknown",
    ]
}

/// `expect: outcomes: NAME: { OUTCOME: N | {min: N, max: M} }`.
public struct OutcomeExpectation: Sendable {
    public struct Bound: Sendable, Equatable, CustomStringConvertible {
        public var min: Int
        public var max: Int?

        public init(min: Int, max: Int?) {
            self.min = min
            self.max = max
        }

        public func contains(_ n: Int) -> Bool { n >= min && (max.map { n <= $0 } ?? true) }

        public var description: String {
            if let max, max == min { return "\(min)" }
            switch max {
            case nil: return "at least \(min)"
            case let max? where min == 0: return "at most \(max)"
            case let max?: return "\(min)...\(max)"
            }
        }
    }

    /// The counter (`count: NAME`).
    public var name: String
    /// Outcome (`ok` or an error name) -> how many times, in the file's order. An outcome that is not listed
    /// must not happen.
    public var counts: [(outcome: String, bound: Bound)]
    public var location: SourceLocation

    public init(name: String, counts: [(outcome: String, bound: Bound)], location: SourceLocation) {
        self.name = name
        self.counts = counts
        self.location = location
    }

    /// What is wrong with `tally` (outcome -> count), one text per broken bound, empty when it holds.
    public func problems(_ tally: [String: Int]) -> [String] {
        var problems: [String] = []
        for (outcome, bound) in counts where !bound.contains(tally[outcome] ?? 0) {
            problems.append("\(outcome): want \(bound), got \(tally[outcome] ?? 0)")
        }
        let listed = Set(counts.map(\.outcome))
        for (outcome, n) in tally.sorted(by: { $0.key < $1.key }) where n > 0 && !listed.contains(outcome) {
            problems.append("\(outcome): want 0 (not listed), got \(n)")
        }
        return problems
    }
}

extension Step {
    /// Whether the step may end in `outcome` (`ok` for success, else an error name): with `expect-error` absent
    /// only success, with one name only that error, with a list any of its entries (`none` is success).
    public func accepts(_ outcome: String) -> Bool {
        if let outcomes { return outcomes.contains(outcome == OutcomeName.ok ? OutcomeName.success : outcome) }
        if let expectError { return outcome == expectError }
        return outcome == OutcomeName.ok
    }

    /// What `expect-error` says, as written: `already-exists`, `[none, already-exists]`, or nil.
    public var expectationText: String? {
        if let outcomes { return "[" + outcomes.joined(separator: ", ") + "]" }
        return expectError
    }

    /// Every outcome the step may be tallied under (`ok` for success).
    public var acceptedOutcomes: [String] {
        if let outcomes { return outcomes.map { $0 == OutcomeName.success ? OutcomeName.ok : $0 } }
        return [expectError ?? OutcomeName.ok]
    }
}
