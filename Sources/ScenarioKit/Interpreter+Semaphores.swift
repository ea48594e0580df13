import Yams

/// The `semaphore` resource kind (a keyed system semaphore, QSystemSemaphore) and its steps: `acquire`,
/// `release`, `try-acquire`, `check-value`; plus `check-at-most`, the bound check of an in-memory gauge.
extension Interpreter {
    /// System V semaphores hold at most SEMVMX (32767); POSIX ones SEM_VALUE_MAX (INT_MAX on Linux).
    static let systemVSemaphoreMax = 32767

    /// Fields of a `kind: semaphore` resource: `backend`, `key`, `initial`; no memory, so no `size` or `lock`.
    mutating func semaphoreSpec(_ spec: inout ResourceSpec, entries: [(key: String, keyNode: Node, value: Node)], node: Node) {
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        for key in ["size", "lock", "lock-offset", "dir", "private", "seals"] {
            if let node = value(key) {
                reader.fail(node, "'\(key)' does not apply to a semaphore resource (it has a count, no memory): it takes backend, key and initial")
            }
        }
        spec.backend = value("backend").flatMap { reader.choice($0, "backend", as: SegmentBackend.self) } ?? .systemv
        spec.key = value("key").flatMap { reader.string($0, "key") } ?? spec.id
        if spec.key?.isEmpty == true { reader.fail(value("key"), "a semaphore key must not be empty") }
        if let key = spec.key, key.utf8.count > ScenarioLimits.keyBytes {
            reader.fail(value("key"), "the semaphore key is \(key.utf8.count) bytes long; at most \(ScenarioLimits.keyBytes) (Qt's object name, with the run's suffix, must fit a file name: NAME_MAX 255)")
            spec.key = nil
        }
        let max = spec.backend == .posix ? Int(Int32.max) : Self.systemVSemaphoreMax
        if let node = value("initial") {
            spec.initial = reader.int(node, "initial", range: 0...max) ?? 0
        }
    }

    /// A semaphore with a segment's key and backend is that segment's lock semaphore (Qt derives both from the
    /// legacy key): refused, naming both, rather than sharing a count with the segment's lock by accident.
    mutating func checkSemaphoreKeys(_ resources: [ResourceSpec]) {
        for semaphore in resources where semaphore.kind == .semaphore {
            if let segment = resources.first(where: { $0.kind == .segment && $0.key == semaphore.key && $0.backend == semaphore.backend }) {
                reader.fail(at: semaphore.location, "semaphore '\(semaphore.id)' has the key '\(semaphore.key ?? "")' of segment '\(segment.id)': it would be that segment's lock semaphore (Qt derives both from the key); give it another key")
            }
        }
    }

    /// `acquire: RES | {res, n, timeout}`, `release: RES | {res, n}`, `try-acquire: RES`, `check-value: {res, value}`,
    /// `check-at-most: {res, offset, max}`.
    mutating func semaphoreStep(_ kind: StepKind, _ value: Node, node: Node, resources: [String: ResourceSpec]) -> Step.Action? {
        let ids = Set(resources.keys)
        switch kind {
        case .acquire, .release:
            let allowed = kind == .acquire ? ["res", "n", "timeout"] : ["res", "n"]
            guard case .mapping = value else {
                return resourceRef(value, node, ids: ids).map { kind == .acquire ? .acquire(resource: $0, n: 1, timeout: nil) : .release(resource: $0, n: 1) }
            }
            guard let fields = reader.mapping(value, kind.rawValue, allowed: allowed) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: ids) else { return nil }
            // acquire takes at least one unit; release(0) does nothing, as Qt's.
            let n = args["n"].flatMap { reader.int($0, "n", range: (kind == .acquire ? 1 : 0)...Int(Int16.max)) } ?? 1
            if kind == .release { return .release(resource: res, n: n) }
            var timeout: Duration?
            if let node = args["timeout"], let parsed = reader.duration(node, "timeout") {
                if parsed <= .zero { reader.fail(node, "an acquire timeout must be longer than 0") } else { timeout = parsed }
                // Qt can only wait for a unit in a process it may end; a wait for several would lose the ones
                // taken when it is ended (POSIX semaphores have no undo).
                if n > 1 { reader.fail(node, "timeout: applies to an acquire of one unit (n: 1); wait for \(n) units with \(n) acquires") }
            }
            return .acquire(resource: res, n: n, timeout: timeout)
        case .tryAcquire:
            if case .mapping = value {
                guard let fields = reader.mapping(value, "try-acquire", allowed: ["res"]) else { return nil }
                return resourceRef(Arguments(fields)["res"], value, ids: ids).map { .tryAcquire(resource: $0) }
            }
            return resourceRef(value, node, ids: ids).map { .tryAcquire(resource: $0) }
        case .checkValue:
            guard let fields = reader.mapping(value, "check-value", allowed: ["res", "value"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: ids) else { return nil }
            guard let valueNode = args["value"] else {
                reader.fail(value, "check-value needs value: (the count the semaphore must have)")
                return nil
            }
            return reader.int(valueNode, "value", range: 0...Int(Int32.max)).map { .checkValue(resource: res, value: $0) }
        case .checkAtMost:
            guard let fields = reader.mapping(value, "check-at-most", allowed: ["res", "offset", "max"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: ids) else { return nil }
            let offset = args["offset"].flatMap { reader.int($0, "offset", range: 0...Int.max) } ?? 0
            guard let maxNode = args["max"] else {
                reader.fail(value, "check-at-most needs max: (the largest value the u64 may hold)")
                return nil
            }
            guard let text = reader.string(maxNode, "max") else { return nil }
            guard let max = UInt64(text.filter { $0 != "_" }) else {
                reader.fail(maxNode, "max must be an unsigned 64-bit integer, not '\(text)'")
                return nil
            }
            return .checkAtMost(resource: res, offset: offset, max: max)
        default:
            return nil
        }
    }

    /// Semaphore steps need a semaphore; a semaphore takes only create, attach (read-write), detach and the
    /// semaphore steps. False when the step was refused (nothing more to say about it).
    mutating func checkSemaphoreApplies(_ action: Step.Action, resource: ResourceSpec, node: Node) -> Bool {
        let id = resource.id
        switch action {
        case .acquire, .release, .tryAcquire, .checkValue:
            if resource.kind != .semaphore {
                reader.fail(node, "\(action.kind.rawValue) works on a semaphore resource; '\(id)' is a \(resource.kind.rawValue)" + (resource.kind == .segment ? " (its lock is lock/unlock/try-lock)" : ""))
                return false
            }
            return true
        default:
            guard resource.kind == .semaphore else { return true }
        }
        switch action {
        case .create(_, let size?):
            reader.fail(node, "a semaphore has no size (create: \(id) makes it with its initial count; size \(size) does not apply)")
        case .attach(_, true):
            reader.fail(node, "a semaphore has no read-only mode (attach: \(id) opens it)")
        case .create, .attach, .detach:
            return true
        default:
            reader.fail(node, "\(action.kind.rawValue) needs memory or a lock; '\(id)' is a semaphore (it takes create, attach, detach, acquire, release, try-acquire and check-value)")
        }
        return false
    }
}
