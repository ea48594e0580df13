import SharedMemoryKit

/// The plan a worker process executes: one worker's resources and steps, in a line format simple enough for
/// C to parse without a library.
///
///     shm-harness-plan 1
///     file scenarios/lock/counter.yaml
///     worker hammer 3 16
///     resource seg kind=segment key=systemv%3A%2Ftmp%2Fqipc_... size=4096 lock=semaphore lock-offset=0
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
            lines.append("resource \(Self.encode(r.id)) " + fields.joined(separator: " "))
        }
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
            case .truncate(let r, let size):
                add("res", r)
                add("size", "\(size)")
            case .seal(let r, let seals):
                add("res", r)
                add("seals", seals.map(\.rawValue).joined(separator: ","))
            case .barrier(let name): add("name", name)
            case .sleep(let duration): add("ns", "\(duration.nanoseconds)")
            case .crash(let signal): add("signal", "\(signal)")
            }
            if let e = step.expectError { add("expect-error", e) }
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
            case "file": plan.file = words.count > 1 ? decode(words[1]) ?? "" : ""
            case "worker":
                guard words.count == 4, let group = decode(words[1]), let index = Int(words[2]), let count = Int(words[3]) else {
                    throw ParseError(line: position, message: "worker GROUP INDEX COUNT")
                }
                plan.group = group
                plan.index = index
                plan.count = count
            case "resource":
                guard words.count >= 2, let id = decode(words[1]) else { throw ParseError(line: position, message: "resource ID fields…") }
                let f = try fields(words.dropFirst(2), line: position)
                guard let kind = f["kind"].flatMap(ResourceKind.init(rawValue:)), let lock = f["lock"].flatMap(LockKind.init(rawValue:)) else {
                    throw ParseError(line: position, message: "resource needs kind= and lock=")
                }
                plan.resources.append(Resource(
                    id: id, kind: kind, key: f["key"], size: f["size"].flatMap { Int($0) }, lock: lock,
                    lockOffset: f["lock-offset"].flatMap { Int($0) } ?? 0, path: f["path"], fd: f["fd"].flatMap { Int32($0) },
                    isPrivate: f["private"] == "1"))
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

    static func fields(_ words: ArraySlice<Substring>, line: Int) throws(ParseError) -> [String: String] {
        var result: [String: String] = [:]
        for word in words {
            guard let eq = word.firstIndex(of: "="), let value = decode(word[word.index(after: eq)...]) else {
                throw ParseError(line: line, message: "bad field '\(word)'")
            }
            result[String(word[..<eq])] = value
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
                let f = try fields(words.dropFirst(2), line: number)
                guard let body = f["body"].flatMap({ Int($0) }), body >= 0 else { throw ParseError(line: number, message: "repeat needs body=N (N >= 0)") }
                let inner = try steps(lines, &cursor, count: body, file: file)
                let action: Step.Action
                if let times = f["times"].flatMap({ Int($0) }), times >= 0 {
                    action = .repeatTimes(times, inner)
                } else if let ns = f["for-ns"].flatMap({ Int64($0) }), ns >= 0 {
                    action = .repeatFor(.nanoseconds(ns), inner)
                } else {
                    throw ParseError(line: number, message: "repeat needs times= or for-ns=")
                }
                result.append(Step(action: action, expectError: f["expect-error"], location: location))
                continue
            }
            guard words.count >= 3, let kind = StepKind(rawValue: String(words[2])) else { throw ParseError(line: number, message: "unknown step") }
            let f = try fields(words.dropFirst(3), line: number)
            func res() throws(ParseError) -> String {
                guard let r = f["res"] else { throw ParseError(line: number, message: "\(kind.rawValue) needs res=") }
                return r
            }
            /// A number field: absent is `fallback`; present but not a number is a broken plan.
            func int(_ name: String, _ fallback: Int = 0) throws(ParseError) -> Int {
                guard let text = f[name] else { return fallback }
                guard let value = Int(text) else { throw ParseError(line: number, message: "\(name)=\(text) is not a number") }
                return value
            }
            let action: Step.Action
            switch kind {
            case .create: action = .create(resource: try res(), size: f["size"].flatMap { Int($0) })
            case .attach: action = .attach(resource: try res(), readOnly: f["mode"] == "ro")
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
            case .add: action = .add(resource: try res(), offset: try int("offset"), value: Int64(f["value"] ?? "1") ?? 1)
            case .atomicAdd: action = .atomicAdd(resource: try res(), offset: try int("offset"), value: Int64(f["value"] ?? "1") ?? 1)
            case .store, .check:
                let value: StoredValue
                if let u = f["u64"].flatMap({ UInt64($0) }) {
                    value = .u64(u)
                } else if let hex = f["hex"] {
                    let digits = Array(hex)
                    value = .bytes(stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) })
                } else {
                    throw ParseError(line: number, message: "\(kind.rawValue) needs u64= or hex=")
                }
                let r = try res()
                action = kind == .store ? .store(resource: r, offset: try int("offset"), value: value) : .check(resource: r, offset: try int("offset"), value: value)
            case .fill: action = .fill(resource: try res(), byte: UInt8(truncatingIfNeeded: try int("byte")))
            case .checkFill: action = .checkFill(resource: try res(), byte: UInt8(truncatingIfNeeded: try int("byte")))
            case .truncate: action = .truncate(resource: try res(), size: try int("size"))
            case .seal: action = .seal(resource: try res(), seals: (f["seals"] ?? "").split(separator: ",").compactMap { Seal(rawValue: String($0)) })
            case .barrier: action = .barrier(name: f["name"] ?? "")
            case .sleep: action = .sleep(.nanoseconds(Int64(f["ns"] ?? "0") ?? 0))
            case .crash: action = .crash(signal: Int32(f["signal"] ?? "9") ?? 9)
            case .repeat: throw ParseError(line: number, message: "repeat is its own line kind")
            }
            result.append(Step(action: action, expectError: f["expect-error"], location: location))
        }
        if let count, result.count != count { throw ParseError(line: lines.last?.0 ?? 0, message: "a repeat body is cut short") }
        return result
    }
}

extension String {
    /// Two lowercase hex digits.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }
}
