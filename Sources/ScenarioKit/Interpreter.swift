import Foundation
import Yams

/// Turns one matrix combination of a scenario's YAML tree into a ``Scenario``, checking every field.
struct Interpreter {
    var reader: NodeReader

    static let resourceKeys = ["kind", "backend", "key", "size", "lock", "lock-offset", "dir", "private", "seals", "share", "initial"]
    static let workerKeys = ["name", "count", "impl", "command", "user", "steps", "expect", "divergence"]
    static let maxWorkers = 4096

    mutating func scenario(
        _ top: [(key: String, keyNode: Node, value: Node)], file: String, root: String?,
        combination: [(name: String, value: String)], node: Node
    ) -> Scenario? {
        func value(_ key: String) -> Node? { top.first { $0.key == key }?.value }
        let stem = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let name = value("name").flatMap { reader.string($0, "name") } ?? stem
        let summary = value("summary").flatMap { reader.string($0, "summary") } ?? ""
        let tags = value("tags").flatMap { reader.list($0, "tags") }.map { $0.compactMap { reader.string($0, "a tag") } } ?? []
        var requires: [Requirement] = []
        if let list = value("requires").flatMap({ reader.list($0, "requires") }) {
            for item in list {
                if let requirement = reader.choice(item, "requirement", as: Requirement.self) { requires.append(requirement) }
            }
        }
        var timeout = ScenarioLoader.defaultTimeout
        if let node = value("timeout"), let parsed = reader.duration(node, "timeout") {
            if parsed <= .zero { reader.fail(node, "timeout must be longer than 0") } else { timeout = parsed }
        }

        var resources: [ResourceSpec] = []
        if let node = value("resources"), let entries = reader.mapping(node, "resources", allowed: [String](anyKeys: node)) {
            for entry in entries {
                if let resource = resourceSpec(id: entry.key, keyNode: entry.keyNode, entry.value) { resources.append(resource) }
            }
        }
        var environmentNames: [String: String] = [:]
        for resource in resources {
            if let other = environmentNames[resource.environmentName] {
                reader.fail(value("resources"), "resources '\(other)' and '\(resource.id)' both become SHM_HARNESS_\(resource.environmentName)_* for exec workers; rename one")
            }
            environmentNames[resource.environmentName] = resource.id
        }
        checkSemaphoreKeys(resources)
        let ids = Set(resources.map(\.id))
        let kinds = Dictionary(resources.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })

        let setup = value("setup").flatMap { steps($0, resources: kinds, inSetup: true) } ?? []
        if let node = value("setup") { checkExecutedSteps(setup, node: node, what: "setup") }
        var workers: [WorkerSpec] = []
        if let node = value("workers"), let list = reader.list(node, "workers") {
            for (index, item) in list.enumerated() {
                if let worker = workerSpec(item, index: index, resources: kinds) {
                    if workers.contains(where: { $0.name == worker.name }) {
                        reader.fail(item, "duplicate worker name '\(worker.name)'")
                    }
                    workers.append(worker)
                }
            }
        } else if value("workers") == nil {
            reader.fail(node, "a scenario needs workers:")
        }
        let total = workers.reduce(0) { $0 + $1.count }
        if total > Self.maxWorkers { reader.fail(value("workers"), "\(total) worker processes; at most \(Self.maxWorkers)") }
        checkPlannedSteps(workers, node: value("workers"))
        let expect = value("expect").flatMap { expectation($0, ids: ids) } ?? ScenarioExpectation(memory: [], checkLeaks: true)
        checkOutcomes(expect.outcomes, workers: workers, setup: setup)
        checkDescriptorPassing(workers: workers, setup: setup, expect: expect, resources: kinds)

        var classname = "scenarios"
        if let root {
            let rootURL = URL(fileURLWithPath: root).standardizedFileURL.path
            let dir = URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path
            if dir.hasPrefix(rootURL) {
                let relative = dir.dropFirst(rootURL.count).drop(while: { $0 == "/" })
                if !relative.isEmpty { classname = relative.replacingOccurrences(of: "/", with: ".") }
            }
        }
        var scenario = Scenario(
            file: file, classname: classname, name: name, summary: summary, tags: tags, requires: requires,
            timeout: timeout, combination: combination, resources: resources, setup: setup, workers: workers,
            expect: expect, location: reader.location(node))
        scenario.divergence = value("divergence").flatMap { divergence($0) }
        scenario.limits = value("limits").flatMap { testcaseLimits($0) }
        scenario.chaos = value("chaos").map { chaosKills($0, workers: workers, timeout: timeout) } ?? []
        scenario.startDelay = value("start-delay").flatMap { startDelay($0, timeout: timeout) }
        return scenario
    }

    mutating func resourceSpec(id: String, keyNode: Node, _ node: Node) -> ResourceSpec? {
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            reader.fail(keyNode, "resource ids are plain words (letters, digits, - and _), not '\(id)'")
            return nil
        }
        guard reader.checkName(id, "the resource id", keyNode) else { return nil }
        guard let entries = reader.mapping(node, "resource '\(id)'", allowed: Self.resourceKeys) else { return nil }
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let kindNode = value("kind") else {
            reader.fail(node, "resource '\(id)' needs kind: (segment, file, memfd or semaphore)")
            return nil
        }
        guard let kind = reader.choice(kindNode, "resource kind", as: ResourceKind.self) else { return nil }
        var spec = ResourceSpec(
            id: id, kind: kind, backend: nil, key: nil, size: nil, lock: [.segment, .semaphore].contains(kind) ? .semaphore : .futex,
            lockOffset: 0, directory: nil, isPrivate: false, seals: [], location: reader.location(keyNode))
        func only(_ key: String, for allowed: ResourceKind...) {
            if let node = value(key), !allowed.contains(kind) {
                reader.fail(node, "'\(key)' does not apply to a \(kind.rawValue) resource")
            }
        }
        only("backend", for: .segment, .semaphore)
        only("key", for: .segment, .semaphore)
        only("initial", for: .semaphore)
        only("dir", for: .file)
        only("private", for: .file)
        only("seals", for: .memfd)
        only("share", for: .memfd)
        if kind == .semaphore {
            semaphoreSpec(&spec, entries: entries, node: node)
            return spec
        }
        if kind == .segment {
            if let node = value("backend") { spec.backend = reader.choice(node, "backend", as: SegmentBackend.self) } else {
                spec.backend = .systemv
            }
            if let node = value("key") { spec.key = reader.string(node, "key") } else {
                spec.key = id
            }
            // An empty key stays empty (the runner makes only non-empty keys unique): Qt's empty key, on which
            // create and attach fail with key-error (scenarios/keys/).
            if let key = spec.key, key.utf8.count > ScenarioLimits.keyBytes {
                reader.fail(value("key") ?? keyNode, "the segment key is \(key.utf8.count) bytes long; at most \(ScenarioLimits.keyBytes) (Qt's object name keeps the key's letters; past about 196 of them it no longer fits a file name, NAME_MAX 255)")
                spec.key = nil
            }
        }
        if let node = value("size") {
            spec.size = reader.size(node, "size")
            if spec.size == 0 { reader.fail(node, "size must be larger than 0") }
        } else {
            reader.fail(node, "resource '\(id)' needs size:")
        }
        if let node = value("lock") { spec.lock = reader.choice(node, "lock", as: LockKind.self) ?? spec.lock }
        if spec.lock == .semaphore && kind != .segment {
            reader.fail(value("lock"), "lock: semaphore is a segment's lock; use futex, robust-mutex or lockfile for a \(kind.rawValue)")
        }
        if let node = value("lock-offset") {
            spec.lockOffset = reader.int(node, "lock-offset", range: 0...Int(Int32.max)) ?? 0
            if spec.lockOffset % 8 != 0 { reader.fail(node, "lock-offset must be a multiple of 8") }
        }
        if [.futex, .robustMutex].contains(spec.lock), let size = spec.size, spec.lockOffset + 64 > size {
            reader.fail(value("lock-offset") ?? value("size"), "the lock's 64 bytes at offset \(spec.lockOffset) do not fit in \(size) bytes")
        }
        if let node = value("dir") {
            spec.directory = reader.string(node, "dir")
            if let dir = spec.directory, dir.utf8.count > ScenarioLimits.directoryBytes {
                reader.fail(node, "dir is \(dir.utf8.count) bytes long; at most \(ScenarioLimits.directoryBytes) (the file's path must fit PATH_MAX)")
                spec.directory = nil
            }
        } else if kind == .file { spec.directory = "tmpfs" }
        if let node = value("private") { spec.isPrivate = reader.bool(node, "private") ?? false }
        if let node = value("seals"), let list = reader.list(node, "seals") {
            spec.seals = list.compactMap { reader.choice($0, "seal", as: Seal.self) }
        }
        if let node = value("share") { spec.share = reader.choice(node, "share", as: MemFDShare.self) ?? .inherit }
        return spec
    }

    mutating func workerSpec(_ node: Node, index: Int, resources: [String: ResourceSpec]) -> WorkerSpec? {
        guard let entries = reader.mapping(node, "a worker", allowed: Self.workerKeys) else { return nil }
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        let name = value("name").flatMap { reader.string($0, "worker name") } ?? "worker\(index + 1)"
        if name.isEmpty || name.contains("/") || name.contains(" ") {
            reader.fail(value("name"), "worker names are words without '/' or spaces, not '\(name)'")
        }
        _ = reader.checkName(name, "the worker name", value("name"))
        let count = value("count").flatMap { reader.int($0, "count", range: 1...Self.maxWorkers) } ?? 1
        let impl = value("impl").flatMap { reader.choice($0, "impl", as: WorkerImpl.self) } ?? .swift
        var command: [String] = []
        if let node = value("command") {
            if impl != .exec { reader.fail(node, "command: is for impl: exec") }
            command = reader.list(node, "command").map { $0.compactMap { reader.string($0, "a command argument") } } ?? []
            if command.isEmpty { reader.fail(node, "command: needs the program and its arguments") }
        } else if impl == .exec {
            reader.fail(node, "impl: exec needs command: [program, args...]")
        }
        let user = value("user").flatMap { reader.string($0, "user") }
        var steps: [Step] = []
        if let node = value("steps") {
            if impl == .exec { reader.fail(node, "an exec worker runs its command; it has no steps") }
            steps = self.steps(node, resources: resources, inSetup: false) ?? []
            checkRegisterUse(steps)
            checkExecutedSteps(steps, node: node, what: "worker '\(name)'")
        } else if impl != .exec {
            reader.fail(node, "worker '\(name)' needs steps:")
        }
        var expect = Termination.exit(0)
        if let node = value("expect"), let e = reader.mapping(node, "a worker's expect", allowed: ["exit", "signal"]) {
            if e.count != 1 { reader.fail(node, "a worker's expect is either exit: N or signal: NAME") }
            for entry in e {
                if entry.key == "exit", let code = reader.int(entry.value, "exit", range: 0...255) { expect = .exit(Int32(code)) }
                if entry.key == "signal", let text = reader.string(entry.value, "signal") {
                    if let number = Signals.number(text) { expect = .signal(number) } else {
                        reader.fail(entry.value, "unknown signal '\(text)'")
                    }
                }
            }
        }
        if impl == .qt { checkQt(steps, resources: resources) }
        var worker = WorkerSpec(
            name: name, count: count, impl: impl, command: command, user: user, steps: steps, expect: expect,
            location: reader.location(node))
        worker.divergence = value("divergence").flatMap { divergence($0) }
        return worker
    }

    /// A `divergence:` text: one non-empty line.
    mutating func divergence(_ node: Node) -> String? {
        guard let text = reader.string(node, "divergence") else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { reader.fail(node, "divergence: says how the behaviour differs; it must not be empty") }
        return trimmed.isEmpty ? nil : trimmed.replacingOccurrences(of: "\n", with: " ")
    }

    /// What real Qt (QSharedMemory through PySide6) cannot do is refused for `impl: qt` workers, with why.
    mutating func checkQt(_ steps: [Step], resources: [String: ResourceSpec]) {
        for step in steps {
            let kind = step.action.kind
            if let reason = Self.qtRefusals[kind] {
                reader.fail(at: step.location, "impl: qt cannot run \(kind.rawValue): \(reason)")
                continue
            }
            guard Self.qtSteps.contains(kind) else {
                reader.fail(at: step.location, "impl: qt cannot run \(kind.rawValue): the Qt worker (QtWorker/qt_worker.py) does not implement it")
                continue
            }
            if case .repeatTimes(_, let body) = step.action { checkQt(body, resources: resources) }
            if case .repeatFor(_, let body) = step.action { checkQt(body, resources: resources) }
            guard let id = step.action.resource, let resource = resources[id] else { continue }
            if resource.kind == .semaphore { continue }
            if resource.kind != .segment {
                reader.fail(at: step.location, "impl: qt cannot use '\(id)': Qt has no \(resource.kind.rawValue) resources (QSharedMemory segments and QSystemSemaphore only)")
            } else if resource.lock != .semaphore {
                reader.fail(at: step.location, "impl: qt cannot use '\(id)' with lock: \(resource.lock.rawValue): Qt's only lock is the segment's system semaphore (lock: semaphore)")
            }
        }
    }

    /// The steps the Qt worker implements; any other (a step added later) is refused for `impl: qt`.
    static let qtSteps: Set<StepKind> = [
        .create, .attach, .detach, .lock, .unlock, .add, .load, .storeLoaded, .compare, .store, .check, .fill, .checkFill,
        .barrier, .sleep, .repeat, .crash, .acquire, .release, .checkAtMost,
    ]

    /// Steps Qt has no operation for, and why.
    static let qtRefusals: [StepKind: String] = [
        .tryLock: "QSharedMemory has no try-lock (lock() always waits)",
        .atomicAdd: "Qt has no atomic add on QSharedMemory memory (PySide6 binds no QAtomicInteger); use lock + add",
        .truncate: "Qt's segments have no file size to change",
        .seal: "Qt has no memfd seals",
        .touchAll: "the Qt worker has no unguarded plain loads (Python cannot read memory without bounds checks)",
        .sendFD: "Qt has no descriptor passing (and no memfd resources)",
        .receiveFD: "Qt has no descriptor passing (and no memfd resources)",
        .sync: "QSharedMemory has no msync (and no file resources)",
        .checkFile: "Qt has no file resources",
        .tryAcquire: "QSystemSemaphore has no try-acquire (acquire() always waits)",
        .checkValue: "QSystemSemaphore cannot read its count (it has acquire and release only)",
    ]

    /// `store-loaded` writes what an earlier `load` of the same worker read: a worker's steps must load first.
    mutating func checkRegisterUse(_ steps: [Step]) {
        var loaded = false
        func walk(_ steps: [Step]) {
            for step in steps {
                switch step.action {
                case .load: loaded = true
                case .storeLoaded where !loaded:
                    reader.fail(at: step.location, "store-loaded writes the value an earlier load read; this worker has no load before it")
                case .repeatTimes(_, let body), .repeatFor(_, let body): walk(body)
                default: break
                }
            }
        }
        walk(steps)
    }

    mutating func expectation(_ node: Node, ids: Set<String>) -> ScenarioExpectation? {
        guard let entries = reader.mapping(node, "expect", allowed: ["memory", "leaks", "outcomes"]) else { return nil }
        var result = ScenarioExpectation(memory: [], checkLeaks: true)
        for entry in entries {
            switch entry.key {
            case "outcomes": result.outcomes = outcomeExpectations(entry.value)
            case "leaks":
                switch reader.string(entry.value, "leaks") {
                case "none": result.checkLeaks = true
                case "ignore": result.checkLeaks = false
                case let other?: reader.fail(entry.value, "leaks is none or ignore, not '\(other)'")
                case nil: break
                }
            default:
                for item in reader.list(entry.value, "memory") ?? [] {
                    guard let fields = reader.mapping(item, "a memory check", allowed: ["res", "offset", "u64", "hex", "u64-less-than"]) else { continue }
                    let args = Arguments(fields)
                    guard let res = resourceRef(args["res"], item, ids: ids) else { continue }
                    let offset = args["offset"].flatMap { reader.int($0, "offset", range: 0...Int.max) } ?? 0
                    if let bound = args["u64-less-than"] {
                        guard let check = lessThanCheck(bound, args, item, resource: res, offset: offset) else { continue }
                        result.memory.append(check)
                        continue
                    }
                    guard let stored = storedValue(args, item) else { continue }
                    result.memory.append(MemoryCheck(resource: res, offset: offset, value: stored, location: reader.location(item)))
                }
            }
        }
        return result
    }

    mutating func resourceRef(_ node: Node?, _ parent: Node, ids: Set<String>) -> String? {
        guard let node else {
            reader.fail(parent, "missing res: (the resource id)")
            return nil
        }
        guard let id = reader.string(node, "res") else { return nil }
        guard ids.contains(id) else {
            reader.fail(node, "unknown resource '\(id)'" + (ids.isEmpty ? " (the scenario declares no resources)" : "; declared: \(ids.sorted().joined(separator: ", "))"))
            return nil
        }
        return id
    }

    mutating func storedValue(_ args: Arguments, _ node: Node) -> StoredValue? {
        switch (args["u64"], args["hex"]) {
        case (let u?, nil):
            guard let text = reader.string(u, "u64") else { return nil }
            guard let value = UInt64(text.filter { $0 != "_" }) ?? (text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : nil) else {
                reader.fail(u, "u64 must be an unsigned 64-bit integer, not '\(text)'")
                return nil
            }
            return .u64(value)
        case (nil, let h?):
            guard let text = reader.string(h, "hex") else { return nil }
            let digits = Array(text.filter { $0 != " " && $0 != "_" })
            guard !digits.isEmpty, digits.count % 2 == 0, digits.allSatisfy(\.isHexDigit) else {
                reader.fail(h, "hex must be an even number of hex digits, not '\(text)'")
                return nil
            }
            return .bytes(stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! })
        default:
            reader.fail(node, "give exactly one of u64: or hex:")
            return nil
        }
    }
}

/// A mapping's entries by key.
struct Arguments {
    let entries: [(key: String, keyNode: Node, value: Node)]
    init(_ entries: [(key: String, keyNode: Node, value: Node)]) { self.entries = entries }
    subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }
}

extension Array where Element == String {
    /// The keys a mapping node has (used where any key is allowed, e.g. resource ids).
    init(anyKeys node: Node) {
        if case .mapping(let mapping) = node { self = mapping.compactMap { $0.key.scalar?.string } } else { self = [] }
    }
}
