import SharedMemoryKit

/// The plan a worker process executes: one worker's resources and steps, in a line format simple enough for
/// C to parse without a library.
///
///     shm-harness-plan 1
///     file scenarios/lock/counter.yaml
///     worker hammer 3 16
///     resource seg kind=segment key=systemv%3A%2Ftmp%2Fqipc_... size=4096 lock=semaphore lock-offset=0
///     resource sem kind=semaphore key=systemv%3A%2Ftmp%2Fqipc_systemsem_... lock=semaphore lock-offset=0 initial=3
///     step 22 attach res=seg mode=rw
///     repeat 24 times=20000 body=3
///     step 26 lock res=seg timeout-ns=2000000000
///     step 27 add res=seg offset=0 value=1
///     step 28 unlock res=seg
///     step 29 barrier name=start expect-error=not-found
///     end
///
/// Fields are `name=value` with the value percent-encoded (``PercentCoding``: `%XX` for bytes outside
/// `A-Za-z0-9._~/,+-`).
/// A `repeat` line is followed by its `body` direct children (a nested repeat counts as one child).
public struct Plan: Sendable {
    public struct Resource: Sendable, Equatable {
        public var id: String
        public var kind: ResourceKind
        /// Segments: Qt's string form of the native key.
        public var key: String?
        public var size: Int?
        public var lock: LockKind
        public var lockOffset: Int
        /// Files: the path; memfd: nil.
        public var path: String?
        /// memfd: the inherited descriptor.
        public var fd: Int32?
        public var isPrivate: Bool
        /// Semaphores: the count a create (or an open that makes it) starts with.
        public var initial: Int?

        public init(id: String, kind: ResourceKind, key: String?, size: Int?, lock: LockKind, lockOffset: Int, path: String?, fd: Int32?, isPrivate: Bool) {
            self.id = id
            self.kind = kind
            self.key = key
            self.size = size
            self.lock = lock
            self.lockOffset = lockOffset
            self.path = path
            self.fd = fd
            self.isPrivate = isPrivate
        }
    }

    public var file: String
    public var group: String
    public var index: Int
    public var count: Int
    public var resources: [Resource]
    public var steps: [Step]
    /// Sockets to other workers for `send-fd` / `receive-fd` (`channel GROUP INDEX fd=N` lines).
    public var channels: [Channel] = []

    public init(file: String, group: String, index: Int, count: Int, resources: [Resource], steps: [Step]) {
        self.file = file
        self.group = group
        self.index = index
        self.count = count
        self.resources = resources
        self.steps = steps
    }

    public func resource(_ id: String) -> Resource? { resources.first { $0.id == id } }

    // MARK: writing

    public func encoded() -> String {
        var lines = ["shm-harness-plan 1", "file " + Self.encode(file), "worker \(Self.encode(group)) \(index) \(count)"]
        for r in resources {
            var fields = ["kind=\(r.kind.rawValue)"]
            if let key = r.key { fields.append("key=" + Self.encode(key)) }
            if let size = r.size { fields.append("size=\(size)") }
            fields.append("lock=\(r.lock.rawValue)")
            fields.append("lock-offset=\(r.lockOffset)")
            if let path = r.path { fields.append("path=" + Self.encode(path)) }
            if let fd = r.fd { fields.append("fd=\(fd)") }
            if r.isPrivate { fields.append("private=1") }
            if let initial = r.initial { fields.append("initial=\(initial)") }
            lines.append("resource \(Self.encode(r.id)) " + fields.joined(separator: " "))
        }
        for c in channels { lines.append("channel \(Self.encode(c.group)) \(c.index) fd=\(c.fd)") }
        Self.encode(steps, into: &lines)
        lines.append("end")
        return lines.joined(separator: "\n") + "\n"
    }

    static func encode(_ steps: [Step], into lines: inout [String]) {
        for step in steps {
            var fields: [String] = []
            func add(_ name: String, _ value: String) { fields.append(name + "=" + encode(value)) }
            let line = step.location.line
            switch step.action {
            case .repeatTimes(let n, let body):
                lines.append("repeat \(line) times=\(n) body=\(body.count)" + (step.expectError.map { " expect-error=" + encode($0) } ?? ""))
                encode(body, into: &lines)
                continue
            case .repeatFor(let duration, let body):
                lines.append("repeat \(line) for-ns=\(duration.nanoseconds) body=\(body.count)" + (step.expectError.map { " expect-error=" + encode($0) } ?? ""))
                encode(body, into: &lines)
                continue
            case .create(let r, let size):
                add("res", r)
                if let size { add("size", "\(size)") }
            case .attach(let r, let readOnly):
                add("res", r)
                add("mode", readOnly ? "ro" : "rw")
            case .attachPrivate(let r):
                add("res", r)
                add("mode", "private")
            case .lock(let r, let timeout):
                add("res", r)
                if let timeout { add("timeout-ns", "\(timeout.nanoseconds)") }
            case .detach(let r), .unlock(let r), .tryLock(let r), .touchAll(let r):
                add("res", r)
            case .add(let r, let offset, let value), .atomicAdd(let r, let offset, let value):
                add("res", r)
                add("offset", "\(offset)")
                add("value", "\(value)")
            case .store(let r, let offset, let value), .check(let r, let offset, let value):
                add("res", r)
                add("offset", "\(offset)")
                switch value {
                case .u64(let v): add("u64", "\(v)")
                case .bytes(let b): add("hex", b.map { String(format2: $0) }.joined())
                }
            case .fill(let r, let byte), .checkFill(let r, let byte):
                add("res", r)
                add("byte", "\(byte)")
            case .load(let r, let offset):
                add("res", r)
                add("offset", "\(offset)")
            case .storeLoaded(let r, let offset, let plus):
                add("res", r)
                add("offset", "\(offset)")
                add("plus", "\(plus)")
            case .compare(let r, let offset, let other):
                add("res", r)
                add("offset", "\(offset)")
                add("with", "\(other)")
            case .truncate(let r, let size):
                add("res", r)
                add("size", "\(size)")
            case .seal(let r, let seals):
                add("res", r)
                add("seals", seals.map(\.rawValue).joined(separator: ","))
            case .barrier(let name): add("name", name)
            case .sleep(let duration): add("ns", "\(duration.nanoseconds)")
            case .crash(let signal): add("signal", "\(signal)")
            case .sendFD(let r, let group):
                add("res", r)
                add("to", group)
            case .receiveFD(let r), .sync(let r): add("res", r)
            case .checkFile(let r, let offset, let value):
                add("res", r)
                add("offset", "\(offset)")
                switch value {
                case .u64(let v): add("u64", "\(v)")
                case .bytes(let b): add("hex", b.map { String(format2: $0) }.joined())
                }
            case .acquire(let r, let n, let timeout):
                add("res", r)
                add("n", "\(n)")
                if let timeout { add("timeout-ns", "\(timeout.nanoseconds)") }
            case .release(let r, let n):
                add("res", r)
                add("n", "\(n)")
            case .tryAcquire(let r): add("res", r)
            case .checkValue(let r, let value):
                add("res", r)
                add("value", "\(value)")
            case .checkAtMost(let r, let offset, let max):
                add("res", r)
                add("offset", "\(offset)")
                add("max", "\(max)")
            }
            if let e = step.expectError { add("expect-error", e) }
            if let list = step.outcomes { add("expect-error", list.joined(separator: ",")) }
            if let name = step.count { add("count", name) }
            lines.append("step \(line) \(step.action.kind.rawValue)" + (fields.isEmpty ? "" : " " + fields.joined(separator: " ")))
        }
    }

    public static func encode(_ text: String) -> String { PercentCoding.encode(text) }

    public static func decode(_ text: Substring) -> String? { PercentCoding.decode(text) }

    // MARK: reading

    public struct ParseError: Error, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "plan line \(line): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> Plan {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0 }
        guard lines.first == "shm-harness-plan 1" else { throw ParseError(line: 1, message: "not a version 1 plan") }
        var plan = Plan(file: "", group: "", index: 0, count: 1, resources: [], steps: [])
        var position = 1
        var stepLines: [(Int, Substring)] = []
        while position < lines.count {
            let line = lines[position]
            position += 1
            let words = line.split(separator: " ")
            guard let head = words.first else { continue }
            switch head {
            case "file":
                guard words.count == 2, let file = decode(words[1]) else { throw ParseError(line: position, message: "file PATH (one percent-encoded word)") }
                plan.file = file
            case "worker":
                guard words.count == 4, let group = decode(words[1]), let index = Int(words[2]), let count = Int(words[3]) else {
                    throw ParseError(line: position, message: "worker GROUP INDEX COUNT")
                }
                plan.group = group
                plan.index = index
                plan.count = count
            case "resource":
                guard words.count >= 2, let id = decode(words[1]) else { throw ParseError(line: position, message: "resource ID fields…") }
                let f = try fields(words.dropFirst(2), line: position, allowed: Self.resourceFields)
                guard let kind = f["kind"].flatMap(ResourceKind.init(rawValue:)), let lock = f["lock"].flatMap(LockKind.init(rawValue:)) else {
                    throw ParseError(line: position, message: "resource needs kind= (\(ResourceKind.allCases.map(\.rawValue).joined(separator: ", "))) and lock= (\(LockKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                func number(_ name: String, _ range: ClosedRange<Int>) throws(ParseError) -> Int? {
                    guard let text = f[name] else { return nil }
                    guard let value = Int(text), range.contains(value) else {
                        throw ParseError(line: position, message: "\(name)=\(text) is not a number in \(range.lowerBound)...\(range.upperBound)")
                    }
                    return value
                }
                let isPrivate: Bool
                switch f["private"] {
                case nil, "0": isPrivate = false
                case "1": isPrivate = true
                case let other?: throw ParseError(line: position, message: "private=\(other): want 0 or 1")
                }
                var resource = Resource(
                    id: id, kind: kind, key: f["key"], size: try number("size", 0...Int.max), lock: lock,
                    lockOffset: try number("lock-offset", 0...Int.max) ?? 0, path: f["path"],
                    fd: try number("fd", 0...Int(Int32.max)).map { Int32($0) }, isPrivate: isPrivate)
                resource.initial = try number("initial", 0...Int(Int32.max))
                plan.resources.append(resource)
            case "channel": plan.channels.append(try Channel.parse(words, line: position))
            case "step", "repeat": stepLines.append((position, line))
            case "end":
                var cursor = 0
                plan.steps = try steps(stepLines, &cursor, count: nil, file: plan.file)
                return plan
            default: throw ParseError(line: position, message: "unknown line '\(head)'")
            }
        }
        throw ParseError(line: position, message: "missing end")
    }

    static let resourceFields: Set<String> = ["kind", "key", "size", "lock", "lock-offset", "path", "fd", "private", "initial"]

    /// The fields each step kind takes (besides `expect-error`, which every step may carry).
    public static func stepFields(_ kind: StepKind) -> Set<String> {
        switch kind {
        case .create, .truncate: ["res", "size"]
        case .attach: ["res", "mode"]
        case .lock: ["res", "timeout-ns"]
        case .detach, .unlock, .tryLock, .touchAll: ["res"]
        case .add, .atomicAdd: ["res", "offset", "value"]
        case .store, .check: ["res", "offset", "u64", "hex"]
        case .fill, .checkFill: ["res", "byte"]
        case .seal: ["res", "seals"]
        case .barrier: ["name"]
        case .sleep: ["ns"]
        case .crash: ["signal"]
        case .sendFD: ["res", "to"]
        case .receiveFD, .sync: ["res"]
        case .checkFile: ["res", "offset", "u64", "hex"]
        case .repeat: ["times", "for-ns", "body"]
        case .load: ["res", "offset"]
        case .storeLoaded: ["res", "offset", "plus"]
        case .compare: ["res", "offset", "with"]
        case .acquire: ["res", "n", "timeout-ns"]
        case .release: ["res", "n"]
        case .tryAcquire: ["res"]
        case .checkValue: ["res", "value"]
        case .checkAtMost: ["res", "offset", "max"]
        }
    }

    /// `name=value` words; a name outside `allowed` (plus `expect-error`), a repeated name, a word without `=` or a
    /// bad escape is a broken plan.
    /// `counted`: the line is a step's, which may carry `count` too.
    static func fields(_ words: ArraySlice<Substring>, line: Int, allowed: Set<String>, counted: Bool = false) throws(ParseError) -> [String: String] {
        var result: [String: String] = [:]
        for word in words {
            guard let eq = word.firstIndex(of: "="), let value = decode(word[word.index(after: eq)...]) else {
                throw ParseError(line: line, message: "bad field '\(word)'")
            }
            let name = String(word[..<eq])
            guard allowed.contains(name) || name == "expect-error" || (name == "count" && counted) else {
                throw ParseError(line: line, message: "unknown field '\(name)'; expected one of: \((allowed.sorted() + ["expect-error"] + (counted ? ["count"] : [])).joined(separator: ", "))")
            }
            guard result.updateValue(value, forKey: name) == nil else { throw ParseError(line: line, message: "field '\(name)' given twice") }
        }
        return result
    }

    static func steps(_ lines: [(Int, Substring)], _ cursor: inout Int, count: Int?, file: String) throws(ParseError) -> [Step] {
        var result: [Step] = []
        while cursor < lines.count && (count == nil || result.count < count!) {
            let (number, line) = lines[cursor]
            cursor += 1
            let words = line.split(separator: " ")
            guard words.count >= 2, let sourceLine = Int(words[1]) else { throw ParseError(line: number, message: "step LINE KIND fields…") }
            let location = SourceLocation(file: file, line: sourceLine, column: 1)
            if words[0] == "repeat" {
                let f = try fields(words.dropFirst(2), line: number, allowed: stepFields(.repeat))
                guard let body = f["body"].flatMap({ Int($0) }), body >= 0 else { throw ParseError(line: number, message: "repeat needs body=N (N >= 0)") }
                let inner = try steps(lines, &cursor, count: body, file: file)
                let action: Step.Action
                switch (f["times"], f["for-ns"]) {
                case (let t?, nil):
                    guard let times = Int(t), times >= 0 else { throw ParseError(line: number, message: "times=\(t) is not a count") }
                    action = .repeatTimes(times, inner)
                case (nil, let t?):
                    guard let ns = Int64(t), ns >= 0 else { throw ParseError(line: number, message: "for-ns=\(t) is not a duration in nanoseconds") }
                    action = .repeatFor(.nanoseconds(ns), inner)
                default:
                    throw ParseError(line: number, message: "repeat needs times= or for-ns= (one of them)")
                }
                result.append(Step(action: action, expectError: f["expect-error"], location: location))
                continue
            }
            guard words.count >= 3, let kind = StepKind(rawValue: String(words[2])), kind != .repeat else {
                throw ParseError(line: number, message: words.count >= 3 ? "unknown step '\(words[2])'" : "step LINE KIND fields…")
            }
            let f = try fields(words.dropFirst(3), line: number, allowed: stepFields(kind), counted: true)
            func res() throws(ParseError) -> String {
                guard let r = f["res"] else { throw ParseError(line: number, message: "\(kind.rawValue) needs res=") }
                return r
            }
            /// A number field: absent is `fallback`; present but not a number in `range` is a broken plan.
            func int(_ name: String, _ fallback: Int = 0, _ range: ClosedRange<Int> = Int.min...Int.max) throws(ParseError) -> Int {
                guard let text = f[name] else { return fallback }
                guard let value = Int(text), range.contains(value) else {
                    throw ParseError(line: number, message: "\(name)=\(text) is not a number" + (range == Int.min...Int.max ? "" : " in \(range.lowerBound)...\(range.upperBound)"))
                }
                return value
            }
            func int64(_ name: String, _ fallback: Int64) throws(ParseError) -> Int64 {
                guard let text = f[name] else { return fallback }
                guard let value = Int64(text) else { throw ParseError(line: number, message: "\(name)=\(text) is not a signed 64-bit integer") }
                return value
            }
            func required(_ name: String) throws(ParseError) -> String {
                guard let value = f[name] else { throw ParseError(line: number, message: "\(kind.rawValue) needs \(name)=") }
                return value
            }
            let action: Step.Action
            switch kind {
            case .create: action = .create(resource: try res(), size: f["size"] == nil ? nil : try int("size", 0, 0...Int.max))
            case .attach:
                let mode = f["mode"] ?? "rw"
                guard mode == "ro" || mode == "rw" || mode == "private" else { throw ParseError(line: number, message: "mode=\(mode): want ro, rw or private") }
                action = mode == "private" ? .attachPrivate(resource: try res()) : .attach(resource: try res(), readOnly: mode == "ro")
            case .detach: action = .detach(resource: try res())
            case .lock:
                var timeout: Duration?
                if let text = f["timeout-ns"] {
                    guard let ns = Int64(text), ns > 0 else { throw ParseError(line: number, message: "timeout-ns=\(text) is not a positive number") }
                    timeout = .nanoseconds(ns)
                }
                action = .lock(resource: try res(), timeout: timeout)
            case .unlock: action = .unlock(resource: try res())
            case .tryLock: action = .tryLock(resource: try res())
            case .touchAll: action = .touchAll(resource: try res())
            case .add: action = .add(resource: try res(), offset: try int("offset"), value: try int64("value", 1))
            case .atomicAdd: action = .atomicAdd(resource: try res(), offset: try int("offset"), value: try int64("value", 1))
            case .store, .check, .checkFile:
                let value: StoredValue
                switch (f["u64"], f["hex"]) {
                case (let u?, nil):
                    guard let v = UInt64(u) else { throw ParseError(line: number, message: "u64=\(u) is not an unsigned 64-bit integer") }
                    value = .u64(v)
                case (nil, let hex?):
                    let digits = Array(hex.utf8)
                    guard digits.count % 2 == 0, let bytes = Self.hexBytes(digits) else {
                        throw ParseError(line: number, message: "hex=\(hex) is not pairs of hex digits")
                    }
                    value = .bytes(bytes)
                default:
                    throw ParseError(line: number, message: "\(kind.rawValue) needs u64= or hex= (one of them)")
                }
                let r = try res()
                switch kind {
                case .store: action = .store(resource: r, offset: try int("offset"), value: value)
                case .check: action = .check(resource: r, offset: try int("offset"), value: value)
                default: action = .checkFile(resource: r, offset: try int("offset"), value: value)
                }
            case .fill: action = .fill(resource: try res(), byte: UInt8(try int("byte", 0, 0...255)))
            case .checkFill: action = .checkFill(resource: try res(), byte: UInt8(try int("byte", 0, 0...255)))
            case .truncate: action = .truncate(resource: try res(), size: try int("size", 0, 0...Int.max))
            case .seal:
                var seals: [Seal] = []
                let list = try required("seals")
                for name in list.isEmpty ? [] : list.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let seal = Seal(rawValue: String(name)) else {
                        throw ParseError(line: number, message: "seals: unknown seal '\(name)'; expected one of: \(Seal.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    seals.append(seal)
                }
                action = .seal(resource: try res(), seals: seals)
            case .barrier:
                let name = try required("name")
                guard !name.isEmpty else { throw ParseError(line: number, message: "barrier needs a name") }
                action = .barrier(name: name)
            case .sleep:
                let ns = try int64("ns", 0)
                guard ns >= 0 else { throw ParseError(line: number, message: "ns=\(ns) is negative") }
                action = .sleep(.nanoseconds(ns))
            case .crash:
                _ = try required("signal")
                action = .crash(signal: Int32(try int("signal", 0, 1...64)))
            case .load: action = .load(resource: try res(), offset: try int("offset"))
            case .storeLoaded: action = .storeLoaded(resource: try res(), offset: try int("offset"), plus: try int64("plus", 0))
            case .compare:
                _ = try required("with")
                action = .compare(resource: try res(), offset: try int("offset"), with: try int("with"))
            case .sendFD:
                let group = try required("to")
                guard !group.isEmpty else { throw ParseError(line: number, message: "send-fd needs a group to send to") }
                action = .sendFD(resource: try res(), to: group)
            case .receiveFD: action = .receiveFD(resource: try res())
            case .sync: action = .sync(resource: try res())
            case .repeat: throw ParseError(line: number, message: "repeat is its own line kind")
            case .acquire:
                var timeout: Duration?
                if let text = f["timeout-ns"] {
                    guard let ns = Int64(text), ns > 0 else { throw ParseError(line: number, message: "timeout-ns=\(text) is not a positive number") }
                    timeout = .nanoseconds(ns)
                }
                action = .acquire(resource: try res(), n: try int("n", 1, 1...Int(Int16.max)), timeout: timeout)
            case .release: action = .release(resource: try res(), n: try int("n", 1, 0...Int(Int16.max)))
            case .tryAcquire: action = .tryAcquire(resource: try res())
            case .checkValue:
                _ = try required("value")
                action = .checkValue(resource: try res(), value: try int("value", 0, 0...Int(Int32.max)))
            case .checkAtMost:
                let text = try required("max")
                guard let max = UInt64(text) else { throw ParseError(line: number, message: "max=\(text) is not an unsigned 64-bit integer") }
                action = .checkAtMost(resource: try res(), offset: try int("offset", 0, 0...Int.max), max: max)
            }
            var step = Step(action: action, expectError: f["expect-error"], location: location)
            if let text = step.expectError, text.contains(",") {
                // expect-error=none,already-exists: any of these outcomes (none: success).
                let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard !names.contains(""), Set(names).count == names.count else {
                    throw ParseError(line: number, message: "expect-error=\(text): a list is distinct names separated by single commas")
                }
                if let bad = names.first(where: { $0 != OutcomeName.success && !OutcomeName.errorNames.contains($0) }) {
                    throw ParseError(line: number, message: "expect-error=\(text): '\(bad)' is neither none nor an error name")
                }
                step.expectError = nil
                step.outcomes = names
            }
            if let name = f["count"] {
                guard !name.isEmpty else { throw ParseError(line: number, message: "count= needs a name") }
                step.count = name
            }
            result.append(step)
        }
        if let count, result.count != count { throw ParseError(line: lines.last?.0 ?? 0, message: "a repeat body is cut short") }
        return result
    }
}

extension Plan {
    /// Pairs of hex digits (either case) as bytes; nil for anything else.
    static func hexBytes(_ digits: [UInt8]) -> [UInt8]? {
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count - 1, by: 2) {
            guard let hi = value(digits[i]), let lo = value(digits[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
        }
        return bytes
    }
}

extension String {
    /// Two lowercase hex digits.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }
}
