import Yams

extension Interpreter {
    /// A list of steps. Each step is a mapping with one step key, plus `expect-error:` and, for `repeat`, `steps:`.
    mutating func steps(_ node: Node, resources: [String: ResourceSpec], inSetup: Bool, depth: Int = 0) -> [Step]? {
        guard case .sequence(let items) = node else {
            reader.fail(node, "steps must be a list, not \(NodeReader.describe(node))")
            return nil
        }
        if depth > 8 { reader.fail(node, "repeat is nested more than 8 deep"); return nil }
        var result: [Step] = []
        for item in items {
            if let step = step(item, resources: resources, inSetup: inSetup, depth: depth) { result.append(step) }
        }
        return result
    }

    mutating func step(_ node: Node, resources: [String: ResourceSpec], inSetup: Bool, depth: Int) -> Step? {
        let allowed = StepKind.allCases.map(\.rawValue) + ["expect-error", "steps", "count"]
        let errorsBefore = reader.errors.count
        guard let entries = reader.mapping(node, "a step", allowed: allowed) else { return nil }
        // An unknown key was reported already: say nothing more about this item.
        if reader.errors.count > errorsBefore && entries.allSatisfy({ ["expect-error", "steps", "count"].contains($0.key) }) { return nil }
        let stepEntries = entries.filter { !["expect-error", "steps", "count"].contains($0.key) }
        guard stepEntries.count == 1, let entry = stepEntries.first, let kind = StepKind(rawValue: entry.key) else {
            reader.fail(node, stepEntries.isEmpty ? "a step needs one of: \(StepKind.allCases.map(\.rawValue).joined(separator: ", "))" : "one step per list item; found \(stepEntries.map(\.key).joined(separator: ", "))")
            return nil
        }
        let location = reader.location(entry.keyNode)
        var expectError: String?
        var outcomes: [String]?
        if let e = entries.first(where: { $0.key == "expect-error" }) {
            if case .sequence = e.value {
                outcomes = outcomeList(e.value)
            } else {
                expectError = reader.string(e.value, "expect-error")
                if let name = expectError, !Self.errorNames.contains(name) {
                    reader.fail(e.value, "unknown error '\(name)'; expected one of: \(Self.errorNames.joined(separator: ", "))" + (name == OutcomeName.success ? " (none alone is the default: leave expect-error out; in a list it accepts success)" : ""))
                }
            }
        }
        let count = entries.first(where: { $0.key == "count" }).flatMap { counterName($0.value) }
        if count != nil && kind == .repeat { reader.fail(entries.first(where: { $0.key == "count" })?.keyNode, "count: tallies one step's outcome; put it on a step inside the repeat") }
        let nested = entries.first { $0.key == "steps" }
        if nested != nil && kind != .repeat { reader.fail(nested?.keyNode, "steps: belongs to a repeat step") }
        if inSetup && ![.create, .attach, .store, .fill, .seal, .truncate].contains(kind) {
            reader.fail(entry.keyNode, "setup runs in the runner itself: it takes create, attach, store, fill, seal and truncate, not \(kind.rawValue)")
        }
        let value = entry.value
        var action: Step.Action?

        func resourceOnly(_ what: String) -> String? {
            if case .mapping = value {
                guard let fields = reader.mapping(value, what, allowed: ["res"]) else { return nil }
                return resourceRef(Arguments(fields)["res"], value, ids: Set(resources.keys))
            }
            return resourceRef(value, node, ids: Set(resources.keys))
        }

        switch kind {
        case .create:
            if case .mapping = value {
                guard let fields = reader.mapping(value, "create", allowed: ["res", "size"]) else { return nil }
                let args = Arguments(fields)
                guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
                let size = args["size"].flatMap { reader.size($0, "size") }
                action = .create(resource: res, size: size)
            } else if let res = resourceOnly("create") {
                action = .create(resource: res, size: nil)
            }
        case .attach:
            if case .mapping = value {
                guard let fields = reader.mapping(value, "attach", allowed: ["res", "mode"]) else { return nil }
                let args = Arguments(fields)
                guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
                var readOnly = false
                var isPrivate = false
                if let m = args["mode"], let mode = reader.string(m, "mode") {
                    switch mode {
                    case "ro": readOnly = true
                    case "rw": readOnly = false
                    case "private": isPrivate = true
                    default: reader.fail(m, "mode is ro, rw or private, not '\(mode)'")
                    }
                }
                action = isPrivate ? .attachPrivate(resource: res) : .attach(resource: res, readOnly: readOnly)
            } else if let res = resourceOnly("attach") {
                action = .attach(resource: res, readOnly: false)
            }
        case .detach: action = resourceOnly("detach").map { .detach(resource: $0) }
        case .lock:
            if case .mapping = value {
                guard let fields = reader.mapping(value, "lock", allowed: ["res", "timeout"]) else { return nil }
                let args = Arguments(fields)
                guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
                var timeout: Duration?
                if let node = args["timeout"], let parsed = reader.duration(node, "timeout") {
                    if parsed <= .zero { reader.fail(node, "a lock timeout must be longer than 0") } else { timeout = parsed }
                }
                action = .lock(resource: res, timeout: timeout)
            } else {
                action = resourceOnly("lock").map { .lock(resource: $0, timeout: nil) }
            }
        case .unlock: action = resourceOnly("unlock").map { .unlock(resource: $0) }
        case .tryLock: action = resourceOnly("try-lock").map { .tryLock(resource: $0) }
        case .touchAll: action = resourceOnly("touch-all").map { .touchAll(resource: $0) }
        case .add, .atomicAdd:
            guard let fields = reader.mapping(value, kind.rawValue, allowed: ["res", "offset", "value"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            let offset = args["offset"].flatMap { reader.int($0, "offset", range: 0...Int.max) } ?? 0
            let amount = args["value"].flatMap { reader.int($0, "value") } ?? 1
            action = kind == .add ? .add(resource: res, offset: offset, value: Int64(amount)) : .atomicAdd(resource: res, offset: offset, value: Int64(amount))
        case .store, .check, .checkFile:
            guard let fields = reader.mapping(value, kind.rawValue, allowed: ["res", "offset", "u64", "hex"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            let offset = args["offset"].flatMap { reader.int($0, "offset", range: 0...Int.max) } ?? 0
            guard let stored = storedValue(args, value) else { return nil }
            switch kind {
            case .store: action = .store(resource: res, offset: offset, value: stored)
            case .check: action = .check(resource: res, offset: offset, value: stored)
            default: action = .checkFile(resource: res, offset: offset, value: stored)
            }
        case .load, .storeLoaded, .compare:
            let extra = kind == .load ? [] : kind == .storeLoaded ? ["plus"] : ["with"]
            guard let fields = reader.mapping(value, kind.rawValue, allowed: ["res", "offset"] + extra) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            let offset = args["offset"].flatMap { reader.int($0, "offset", range: 0...Int.max) } ?? 0
            switch kind {
            case .load: action = .load(resource: res, offset: offset)
            case .storeLoaded:
                let plus = args["plus"].flatMap { reader.int($0, "plus") } ?? 0
                action = .storeLoaded(resource: res, offset: offset, plus: Int64(plus))
            default:
                guard let withNode = args["with"] else {
                    reader.fail(value, "compare needs with: (the offset of the other u64)")
                    return nil
                }
                guard let other = reader.int(withNode, "with", range: 0...Int.max) else { return nil }
                action = .compare(resource: res, offset: offset, with: other)
            }
        case .fill, .checkFill:
            guard let fields = reader.mapping(value, kind.rawValue, allowed: ["res", "byte"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            let byte = args["byte"].flatMap { reader.int($0, "byte", range: 0...255) } ?? 0
            action = kind == .fill ? .fill(resource: res, byte: UInt8(byte)) : .checkFill(resource: res, byte: UInt8(byte))
        case .truncate:
            guard let fields = reader.mapping(value, "truncate", allowed: ["res", "size"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            guard let sizeNode = args["size"], let size = reader.size(sizeNode, "size") else {
                if args["size"] == nil { reader.fail(value, "truncate needs size:") }
                return nil
            }
            action = .truncate(resource: res, size: size)
        case .seal:
            guard let fields = reader.mapping(value, "seal", allowed: ["res", "seals"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            guard let list = args["seals"].flatMap({ reader.list($0, "seals") }) else {
                if args["seals"] == nil { reader.fail(value, "seal needs seals:") }
                return nil
            }
            action = .seal(resource: res, seals: list.compactMap { reader.choice($0, "seal", as: Seal.self) })
        case .barrier:
            if let name = reader.string(value, "barrier"), !name.isEmpty, !name.contains(" ") {
                if reader.checkName(name, "the barrier name", value) { action = .barrier(name: name) }
            } else {
                reader.fail(value, "a barrier needs a name without spaces")
            }
        case .sleep:
            action = reader.duration(value, "sleep").map { .sleep($0) }
        case .crash:
            if let text = reader.string(value, "crash") {
                if let number = Signals.number(text) { action = .crash(signal: number) } else {
                    reader.fail(value, "unknown signal '\(text)'")
                }
            }
        case .sendFD:
            guard let fields = reader.mapping(value, "send-fd", allowed: ["res", "to"]) else { return nil }
            let args = Arguments(fields)
            guard let res = resourceRef(args["res"], value, ids: Set(resources.keys)) else { return nil }
            guard let toNode = args["to"] else {
                reader.fail(value, "send-fd needs to: (the worker group that receives the descriptor)")
                return nil
            }
            guard let group = reader.string(toNode, "to"), !group.isEmpty else {
                reader.fail(toNode, "to: names a worker group")
                return nil
            }
            action = .sendFD(resource: res, to: group)
        case .receiveFD: action = resourceOnly("receive-fd").map { .receiveFD(resource: $0) }
        case .sync: action = resourceOnly("sync").map { .sync(resource: $0) }
        case .acquire, .release, .tryAcquire, .checkValue, .checkAtMost:
            action = semaphoreStep(kind, value, node: node, resources: resources)
        case .repeat:
            guard let body = nested else {
                reader.fail(node, "repeat needs steps:")
                return nil
            }
            let inner = steps(body.value, resources: resources, inSetup: inSetup, depth: depth + 1) ?? []
            if case .mapping = value {
                guard let fields = reader.mapping(value, "repeat", allowed: ["times", "for"]) else { return nil }
                let args = Arguments(fields)
                if let t = args["times"], args["for"] == nil {
                    action = reader.int(t, "times", range: 0...1_000_000_000).map { .repeatTimes($0, inner) }
                } else if let f = args["for"], args["times"] == nil {
                    action = reader.duration(f, "for").map { .repeatFor($0, inner) }
                } else {
                    reader.fail(value, "repeat takes times: N or for: DURATION")
                }
            } else {
                action = reader.int(value, "repeat", range: 0...1_000_000_000).map { .repeatTimes($0, inner) }
            }
        }
        guard let action else { return nil }
        checkApplies(action, resources: resources, node: entry.keyNode)
        var step = Step(action: action, expectError: expectError, location: location)
        step.outcomes = outcomes
        step.count = count
        return step
    }

    /// Steps that only make sense for some kinds of resource.
    mutating func checkApplies(_ action: Step.Action, resources: [String: ResourceSpec], node: Node) {
        guard let id = action.resource, let resource = resources[id] else { return }
        if !checkSemaphoreApplies(action, resource: resource, node: node) { return }
        switch action {
        case .truncate where resource.kind == .segment:
            reader.fail(node, "truncate changes a file's size; '\(id)' is a segment")
        case .seal where resource.kind != .memfd:
            reader.fail(node, "seal applies to a memfd; '\(id)' is a \(resource.kind.rawValue)")
        case .sync where resource.kind == .segment, .checkFile where resource.kind != .file:
            reader.fail(node, "\(action.kind.rawValue) works on a file\(action.kind == .sync ? " or memfd" : "") resource; '\(id)' is a \(resource.kind.rawValue)")
        case .attachPrivate where resource.kind != .file:
            reader.fail(node, "mode: private maps a file copy-on-write; '\(id)' is a \(resource.kind.rawValue)")
        case .sendFD where resource.kind != .memfd, .receiveFD where resource.kind != .memfd:
            reader.fail(node, "\(action.kind.rawValue) passes a memfd's descriptor; '\(id)' is a \(resource.kind.rawValue)")
        default: break
        }
    }

    /// The error names of the contract (the library's `SharedMemoryError.Code.name` list).
    static var errorNames: [String] { OutcomeName.errorNames }
}
