/// How a memfd reaches the workers: `share: inherit` (the default: the runner makes it at setup and every worker
/// inherits it) or `share: pass` (nobody inherits it: a worker makes it with `create` and hands it to another
/// group with `send-fd`, which takes it with `receive-fd`).
public enum MemFDShare: String, Sendable, CaseIterable {
    case inherit, pass
}
