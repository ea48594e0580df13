/// `chaos:` one planned kill: the runner sends `signal` to one random member of worker group `group` (or to
/// all of its members) at a random moment in `window`, counted from the moment every worker was started.
/// Every random choice comes from the testcase's seed (see `shm-harness run --seed`).
public struct ChaosKill: Sendable, Equatable {
    public enum Member: String, Sendable, CaseIterable { case random, all }
    public var group: String
    public var member: Member
    public var signal: Int32
    public var from: Duration
    public var to: Duration
    public var location: SourceLocation

    package init(group: String, member: Member, signal: Int32, from: Duration, to: Duration, location: SourceLocation) {
        self.group = group
        self.member = member
        self.signal = signal
        self.from = from
        self.to = to
        self.location = location
    }
}
