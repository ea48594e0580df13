import ArgumentParser
import Atomics
import CBench
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// `shm-harness bench`: the library's operations against the same work in C (the raw system calls, and
/// libshmh), interleaved in one run; see README "Performance".
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the library's operations against the same work in C (raw system calls and libshmh).",
        discussion: """
            Each case runs its variants interleaved (the Swift library, the C floor, libshmh), several \
            repetitions each, and prints min / median / spread per operation and the ratio of the library's \
            minimum to the floor's. --json writes the results for a later comparison (fields: README).
            """)

    @Flag(help: "Fewer and shorter repetitions (under a minute).")
    var quick = false

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Only the cases whose name matches this glob (e.g. 'lock-*').")
    var filter: String?

    @Option(help: "Repetitions per variant (default 15, --quick 7; cross-process cases: a third of it, at least 3).")
    var repetitions: Int?

    @Flag(help: "List the cases and exit.")
    var list = false

    @Option(help: "Compare with an earlier --json file: each variant's ratio to the floor (its min_ns without one).")
    var baseline: String?

    @Option(help: "With --baseline: the slowdown that fails the command (default 25%).")
    var maxSlowdown: String?

    mutating func validate() throws {
        if let repetitions, repetitions < 1 || repetitions > 1000 {
            throw ValidationError("--repetitions must be 1...1000, not \(repetitions)")
        }
        try validateBaseline()
    }

    func run() throws {
        let cases = BenchCase.all(quick: quick)
        let selected = cases.filter { filter == nil || fnmatch(filter!, $0.name, 0) == 0 }
        if list {
            for item in cases { print("\(item.name)  \(item.summary)") }
            return
        }
        if selected.isEmpty { throw CommandFailure(message: "bench: no case matches --filter \(filter ?? "")", exitCode: 2) }
        guard cbench_allocation_counter_works() == 1 else {
            throw CommandFailure(message: "bench: the allocation counter is not active in this executable")
        }
        let settings = BenchSettings(quick: quick, repetitions: repetitions ?? (quick ? 7 : 15))
        let machine = BenchMachine.current()
        print("shm-harness bench — \(machine.summary)")
        print("repetitions \(settings.repetitions), \(quick ? "quick" : "full"); times per operation; ratio = min / floor min")
        var results: [BenchResult] = []
        for item in selected {
            do {
                let result = try item.run(settings)
                result.printTable()
                results.append(result)
            } catch {
                print("\(item.name): failed: \(error)")
                results.append(BenchResult(name: item.name, summary: item.summary, unit: "op", variants: [], notes: ["failed: \(error)"]))
            }
        }
        if let json {
            let text = BenchResult.json(results, machine: machine, settings: settings)
            guard let file = fopen(json, "w") else { throw CommandFailure(message: "bench: cannot write \(json): \(String(cString: strerror(errno)))") }
            fputs(text, file)
            fclose(file)
            print("wrote \(json)")
        }
        if let baseline { try compareWithBaseline(results, machine: machine, settings: settings, baseline: baseline) }
        if results.contains(where: { !$0.notes.filter { $0.hasPrefix("failed") || $0.hasPrefix("WRONG") }.isEmpty }) {
            throw CommandFailure(message: "bench: some cases failed (see above)")
        }
    }
}

// MARK: model

struct BenchSettings {
    var quick: Bool
    var repetitions: Int
    /// How long one sample of an in-process variant runs: short, so that many samples fit in one scheduler
    /// time slice on a busy machine and the minimum is a sample nobody interrupted.
    var sampleNanoseconds: Int64 { quick ? 1_000_000 : 2_000_000 }
}

struct BenchMachine {
    var cpu: String
    var cores: Int
    var kernel: String
    var summary: String { "\(cpu), \(cores) cores, Linux \(kernel)" }

    static func current() -> BenchMachine {
        var cpu = "unknown CPU"
        if let file = fopen("/proc/cpuinfo", "r") {
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            while getline(&line, &capacity, file) > 0 {
                let text = String(cString: line!)
                if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
                    cpu = String(text[text.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }).prefix(while: { $0 != "\n" }))
                    break
                }
            }
            free(line)
            fclose(file)
        }
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        return BenchMachine(cpu: cpu, cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), kernel: kernel)
    }
}

/// One way of doing a case's work.
struct BenchVariant {
    enum Role: String { case library, floor, libshmh, qt, info }
    var label: String
    var role: Role
    /// Runs `n` operations and returns the elapsed nanoseconds.
    var measure: (Int) throws -> Int64
    /// Calls of `measure` take this many operations (nil: calibrate).
    var fixedOperations: Int? = nil
    /// Allocations per operation of the library variant (counted once, after warming up).
    var countAllocations = false
}

struct BenchVariantResult {
    var label: String
    var role: BenchVariant.Role
    var samples: [Double]  // ns per operation
    var allocationsPerOperation: Double?
    var unavailable: String?

    var sorted: [Double] { samples.sorted() }
    var min: Double { sorted.first ?? .nan }
    var median: Double {
        let s = sorted
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var max: Double { sorted.last ?? .nan }
    /// (max − min) / median.
    var spread: Double { (max - min) / median }
}

struct BenchResult {
    var name: String
    var summary: String
    var unit: String
    var variants: [BenchVariantResult]
    var notes: [String]

    var floor: BenchVariantResult? { variants.first { $0.role == .floor } }
    var libshmh: BenchVariantResult? { variants.first { $0.role == .libshmh } }

    func ratio(_ variant: BenchVariantResult) -> Double? {
        guard let floor, variant.unavailable == nil, floor.min > 0 else { return nil }
        return variant.min / floor.min
    }

    func printTable() {
        print("")
        print("\(name) — \(summary) (per \(unit))")
        for v in variants {
            if let why = v.unavailable {
                print("  \(pad(v.label, 26)) unavailable: \(why)")
                continue
            }
            var line = "  \(pad(v.label, 26)) min \(pad(formatNanoseconds(v.min), 9)) median \(pad(formatNanoseconds(v.median), 9))"
            line += " spread \(pad(fixed(v.spread * 100, 0) + "%", 5))"
            if let r = ratio(v) { line += "  x\(fixed(r, 2))" }
            if let a = v.allocationsPerOperation { line += "  allocs/op \(fixed(a, 2))" }
            print(line)
        }
        for note in notes { print("  note: \(note)") }
    }

    static func json(_ results: [BenchResult], machine: BenchMachine, settings: BenchSettings) -> String {
        func str(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default:
                    if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        }
        func num(_ d: Double?) -> String {
            guard let d, d.isFinite else { return "null" }
            return fixed(d, 3)
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var text = "{\n  \"format\": 1,\n  \"time\": \(now.tv_sec),\n"
        text += "  \"machine\": {\"cpu\": \(str(machine.cpu)), \"cores\": \(machine.cores), \"kernel\": \(str(machine.kernel))},\n"
        text += "  \"quick\": \(settings.quick), \"repetitions\": \(settings.repetitions),\n  \"cases\": [\n"
        text += results.map { r in
            var c = "    {\"name\": \(str(r.name)), \"summary\": \(str(r.summary)), \"unit\": \(str(r.unit)),\n"
            c += "     \"notes\": [\(r.notes.map(str).joined(separator: ", "))],\n     \"variants\": [\n"
            c += r.variants.map { v in
                "       {\"label\": \(str(v.label)), \"role\": \(str(v.role.rawValue)), "
                    + "\"unavailable\": \(v.unavailable.map(str) ?? "null"), "
                    + "\"min_ns\": \(num(v.unavailable == nil ? v.min : nil)), \"median_ns\": \(num(v.unavailable == nil ? v.median : nil)), "
                    + "\"max_ns\": \(num(v.unavailable == nil ? v.max : nil)), \"spread\": \(num(v.unavailable == nil ? v.spread : nil)), "
                    + "\"ratio_to_floor\": \(num(r.ratio(v))), \"allocations_per_op\": \(num(v.allocationsPerOperation)), "
                    + "\"samples_ns\": [\(v.samples.map { num($0) }.joined(separator: ", "))]}"
            }.joined(separator: ",\n")
            return c + "\n     ]}"
        }.joined(separator: ",\n")
        return text + "\n  ]\n}\n"
    }
}

func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// `value` with `digits` decimals (no Foundation).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "nan" }
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, 64, "%.\(digits)f", $0) }
    return String(cString: buffer)
}

func formatNanoseconds(_ ns: Double) -> String {
    guard ns.isFinite else { return "-" }
    if ns < 1_000 { return fixed(ns, 1) + " ns" }
    if ns < 1_000_000 { return fixed(ns / 1_000, 2) + " µs" }
    return fixed(ns / 1_000_000, 2) + " ms"
}

/// A case: makes its objects, returns the variants, cleans up.
struct BenchCase {
    var name: String
    var summary: String
    var unit = "op"
    /// Spawns processes per sample: fewer repetitions (a third, at least 3) and no warm-up run.
    var crossProcess = false
    /// Builds the variants and a clean-up; variants whose work is unavailable are given as `unavailable`.
    var setUp: () throws -> (variants: [BenchVariant], unavailable: [(String, BenchVariant.Role, String)], notes: [String], cleanUp: () -> Void)

    func run(_ settings: BenchSettings) throws -> BenchResult {
        let made = try setUp()
        defer { made.cleanUp() }
        var operations: [Int] = []
        // warm up and calibrate each variant: double until a sample takes long enough
        for variant in made.variants {
            if let fixed = variant.fixedOperations {
                if !crossProcess { _ = try variant.measure(fixed) }
                operations.append(fixed)
                continue
            }
            var n = 1
            while true {
                let elapsed = try variant.measure(n)
                if elapsed >= settings.sampleNanoseconds / 4 || n >= 1 << 26 {
                    let scaled = Double(n) * Double(settings.sampleNanoseconds) / Double(max(elapsed, 1))
                    operations.append(Swift.max(1, Int(scaled)))
                    break
                }
                n *= 2
            }
        }
        var samples = Array(repeating: [Double](), count: made.variants.count)
        let repetitions = crossProcess ? Swift.max(3, settings.repetitions / 3) : settings.repetitions
        for repetition in 0..<repetitions {
            // interleaved, starting with a different variant each time
            for step in 0..<made.variants.count {
                let index = (step + repetition) % made.variants.count
                let n = operations[index]
                let elapsed = try made.variants[index].measure(n)
                samples[index].append(Double(elapsed) / Double(n))
            }
        }
        var results: [BenchVariantResult] = []
        for (index, variant) in made.variants.enumerated() {
            var allocations: Double?
            if variant.countAllocations {
                let n = 1000
                let before = cbench_allocations()
                _ = try variant.measure(n)
                allocations = Double(cbench_allocations() - before) / Double(n)
            }
            results.append(BenchVariantResult(label: variant.label, role: variant.role, samples: samples[index], allocationsPerOperation: allocations))
        }
        for (label, role, why) in made.unavailable {
            results.append(BenchVariantResult(label: label, role: role, samples: [], unavailable: why))
        }
        return BenchResult(name: name, summary: summary, unit: unit, variants: results, notes: made.notes)
    }
}

/// Throws on a failed C call (a -1 elapsed time).
func checked(_ what: String, _ elapsed: Int64) throws -> Int64 {
    if elapsed < 0 { throw CommandFailure(message: "\(what): \(String(cString: strerror(errno)))") }
    return elapsed
}

func benchNow() -> Int64 { cbench_now_ns() }

/// A unique name for this run's objects.
func benchName(_ what: String) -> String { "shmh-bench-\(getpid())-\(what)" }

let qtUnavailable = ("qt", BenchVariant.Role.qt, "Qt 6 C++ (qt6-base-dev) is not built into this bench")
