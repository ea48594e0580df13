import Foundation
import ScenarioKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fuzzer over the scenario loader, bounded in time: the catalogue's scenario files, mutated (byte flips,
/// truncation, duplication, alias bombs, huge and non-finite numbers, deep nesting, long values, invalid
/// UTF-8), each loaded in-process (it loads or is refused, in under 5 s of CPU; a crash kills the test) and a
/// sample through `shm-harness validate` (exit 0 or 2, never a signal, under 5 s of CPU, under 1 GB of RSS).
///
/// Deterministic: `SHM_HARNESS_FUZZ_SEED` (default 1) picks the mutations; `SHM_HARNESS_FUZZ_COUNT` (default
/// 1000) and `SHM_HARNESS_FUZZ_BINARY_COUNT` (default 30) set how many files, for longer runs by hand.
@Suite struct LoaderFuzzTests {
    /// SplitMix64: the same seed gives the same files on every machine.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    }

    static func environmentNumber(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? fallback
    }

    /// The seeds: every scenario of the catalogue and the contract's examples.
    static func corpus() throws -> [[UInt8]] {
        var files = try ScenarioLoader.files(at: Paths.packageRoot + "/scenarios")
        files += try ScenarioLoader.files(at: Paths.fixtures + "/contract")
        return try files.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }
    }

    static let hostileSnippets: [String] = [
        "99999999999999999999999999", "1e400", "-1", "nan", ".inf", "-9223372036854775808", "0x7fffffffffffffff",
        "18446744073709551616", "4GiB", "9223372036854775807GiB", "${x}", "$${", "\u{0}", "*undefined", "&a [*a]",
        "!!binary AAAA", "? [a, b]\n: c", "<<: *m", "- - - - - - - -", "{{{{{{{{", "'unterminated", "\"\\u12\"",
    ]

    /// One mutation of `bytes`.
    static func mutate(_ bytes: [UInt8], _ random: inout Random) -> [UInt8] {
        var out = bytes
        let rounds = 1 + random.below(3)
        for _ in 0..<rounds {
            let at = random.below(out.count + 1)
            switch random.below(11) {
            case 0 where !out.isEmpty:  // flip bits of a byte
                let i = min(at, out.count - 1)
                out[i] ^= UInt8(truncatingIfNeeded: 1 << random.below(8))
            case 1:  // truncate
                out = Array(out.prefix(at))
            case 2 where !out.isEmpty:  // duplicate a slice in place
                let start = min(at, out.count - 1)
                let end = min(out.count, start + 1 + random.below(200))
                out.insert(contentsOf: out[start..<end], at: end)
            case 3:  // a hostile value where a value goes
                let snippet = Array(hostileSnippets[random.below(hostileSnippets.count)].utf8)
                if let colon = out[at...].firstIndex(of: UInt8(ascii: ":")) {
                    out.insert(contentsOf: [UInt8(ascii: " ")] + snippet, at: colon + 1)
                } else {
                    out.insert(contentsOf: snippet, at: at)
                }
            case 4:  // replace a number with a huge or non-finite one
                if let digit = out[at...].firstIndex(where: { (0x30...0x39).contains($0) }) {
                    let numbers = ["999999999999999999999999", "1e308", "-0", "-1", "nan", "1000000001", "4096000"]
                    out.replaceSubrange(digit...digit, with: Array(numbers[random.below(numbers.count)].utf8))
                }
            case 5:  // an alias bomb appended as a step list
                let levels = 4 + random.below(6)
                var text = "\nx_bomb:\n  - &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                for level in 1..<levels {
                    text += "  - &b\(level) [" + Array(repeating: "*b\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
                }
                out += Array(text.utf8)
            case 6:  // a wide matrix
                let dimensions = 2 + random.below(40)
                out = Array(("matrix:\n" + (0..<dimensions).map { "  m\($0): [a, b, c, d, e]\n" }.joined()).utf8) + out
            case 7:  // deep nesting
                let depth = 10 + random.below(3000)
                out.insert(contentsOf: Array(repeating: UInt8(ascii: "["), count: depth) + Array(repeating: UInt8(ascii: "]"), count: random.below(depth + 1)), at: at)
            case 8:  // a long value
                let length = [300, 70_000, 200_000][random.below(3)]
                if let colon = out[at...].firstIndex(of: UInt8(ascii: ":")) {
                    out.insert(contentsOf: [UInt8(ascii: " ")] + Array(repeating: UInt8(ascii: "k"), count: length), at: colon + 1)
                }
            case 9:  // random bytes, invalid UTF-8 and NUL included
                out.insert(contentsOf: (0..<(1 + random.below(16))).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
            default:  // nested repeats with big counts
                let depth = 2 + random.below(7)
                var text = "\n  - steps:\n"
                var indent = "      "
                for _ in 0..<depth {
                    text += indent + "- repeat: \(1 + random.below(1_000_000_000))\n" + indent + "  steps:\n"
                    indent += "    "
                }
                text += indent + "- sleep: 1ms\n"
                out += Array(text.utf8)
            }
        }
        return out
    }

    static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    @Test func mutatedScenariosLoadOrAreRefusedInBoundedTime() throws {
        let corpus = try Self.corpus()
        #expect(corpus.count >= 10)
        let seed = UInt64(Self.environmentNumber("SHM_HARNESS_FUZZ_SEED", 1))
        let count = Self.environmentNumber("SHM_HARNESS_FUZZ_COUNT", 1000)
        let binaryCount = Self.environmentNumber("SHM_HARNESS_FUZZ_BINARY_COUNT", 30)
        var random = Random(state: seed)
        let directory = temporaryPath("fuzz")
        #expect(mkdir(directory, 0o700) == 0)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var loaded = 0
        var refused = 0
        var slowest = 0.0
        var slowestCPU = 0.0
        var sample: [String] = []
        let every = max(1, count / max(1, binaryCount))
        for index in 0..<count {
            let bytes = Self.mutate(corpus[random.below(corpus.count)], &random)
            let path = directory + "/case-\(index).yaml"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            let start = Date()
            let cpuStart = Self.threadCPUSeconds()
            do {
                _ = try ScenarioLoader.load(file: path)
                loaded += 1
            } catch {
                refused += 1
                #expect(error.errors.allSatisfy { $0.location.file == path && $0.location.line >= 1 && $0.location.column >= 1 }, "case \(index): \(error)")
            }
            let seconds = Date().timeIntervalSince(start)
            let cpu = Self.threadCPUSeconds() - cpuStart
            slowest = max(slowest, seconds)
            slowestCPU = max(slowestCPU, cpu)
            // The loader's own work (CPU time: a loaded machine does not inflate it) under 5 s; wall time
            // bounded too, with slack, so that a hang fails.
            #expect(cpu < 5 && seconds < 30, "case \(index) (seed \(seed)) took \(cpu) s of CPU, \(seconds) s")
            if index % every == 0 && sample.count < binaryCount { sample.append(path) } else { unlink(path) }
        }
        var selfUsage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &selfUsage)
        print("loader fuzz (seed \(seed)): \(count) files in-process: \(loaded) loaded, \(refused) refused; slowest \(String(format: "%.3f", slowest)) s (CPU \(String(format: "%.3f", slowestCPU)) s); test process max RSS \(selfUsage.ru_maxrss / 1024) MiB")
        #expect(selfUsage.ru_maxrss < 1 << 20, "the test process stayed under 1 GiB")

        var exits: [Int32: Int] = [:]
        var binarySlowest = 0.0
        var binarySlowestCPU = 0.0
        var binaryRSS = 0
        for path in sample {
            let run = try Measured.run([Paths.harness, "validate", path], timeout: 20, memoryLimitKiB: 2 << 20)
            #expect(run.exitCode == 0 || run.exitCode == 2, "\(path): \(run.summary)")
            #expect(run.cpuSeconds < 5 && run.seconds < 20 && run.maxRSSKiB < 1 << 20, "\(path): \(run.summary)")
            if run.exitCode == 2 {
                #expect(run.stderr.contains(path + ":"), "\(path): the error names the file: \(run.stderr.prefix(300))")
            }
            exits[run.exitCode ?? -(run.signal ?? 0), default: 0] += 1
            binarySlowest = max(binarySlowest, run.seconds)
            binarySlowestCPU = max(binarySlowestCPU, run.cpuSeconds)
            binaryRSS = max(binaryRSS, run.maxRSSKiB)
        }
        print("loader fuzz (seed \(seed)): \(sample.count) files through validate: exits \(exits.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")); slowest \(String(format: "%.2f", binarySlowest)) s (CPU \(String(format: "%.2f", binarySlowestCPU)) s); max RSS \(binaryRSS / 1024) MiB")
    }
}
