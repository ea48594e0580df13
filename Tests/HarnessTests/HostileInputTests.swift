import Foundation
import Harness
import ScenarioKit
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hostile input: every file, option and environment ends with a clear error (exit 2, FILE:LINE:COLUMN for
/// scenarios) in bounded time and memory, never a crash, a hang or something left behind (docs/limits.md).
@Suite struct HostileInputTests {
    static let hostile = Paths.fixtures + "/hostile"

    // MARK: memory bombs, through the binary

    /// A 30-dimension matrix (4^30 combinations, 730 bytes) and nested repeats through YAML aliases (10^9
    /// steps, 1 KiB): each is refused with exit 2 in well under 5 s and little memory.
    @Test(arguments: ["matrix-bomb.yaml", "alias-bomb.yaml"])
    func memoryBombsAreRefusedQuickly(file: String) throws {
        let path = Self.hostile + "/" + file
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size < 1500, "the bomb is a small file")
        let run = try Measured.run([Paths.harness, "validate", path], timeout: 20, memoryLimitKiB: 2 << 20)
        #expect(run.exitCode == 2, "\(run.summary)")
        // Well under 5 s of its own work (0.1-0.4 s in a release build); wall time also bounded, with slack for
        // a loaded CI machine.
        #expect(run.cpuSeconds < 2 && run.seconds < 10, "\(run.summary)")
        #expect(run.maxRSSKiB < 200 * 1024, "\(run.summary)")
        #expect(run.stderr.contains(path + ":"), "the error names the file and place: \(run.stderr)")
        #expect(run.stderr.contains("at most"), "the error names the limit: \(run.stderr)")
    }

    // MARK: limits, in-process, with their places

    static let limited: [(name: String, yaml: String, line: Int, column: Int, message: String)] = [
        ("matrix product", "matrix:\n" + (0..<7).map { "  d\($0): [a, b, c, d]\n" }.joined() + "workers:\n  - steps:\n      - sleep: 1ms\n",
         2, 3, "4 × 4 × 4 × 4 × 4 × 4 × 4 = 16384 combinations; at most 4096"),
        ("loader work", "matrix:\n" + (0..<6).map { "  d\($0): [a, b, c, d]\n" }.joined() + "workers:\n  - steps:\n" + String(repeating: "      - sleep: 1ms\n", count: 20),
         2, 3, "the matrix's 4096 combinations × "),
        ("alias expansion", """
            workers:
              - steps:
                  - repeat: 1
                    steps: &a [&s {sleep: 1ms}, *s, *s, *s, *s, *s, *s, *s, *s, *s]
                  - repeat: 1
                    steps: &b [&r {repeat: 1, steps: *a}, *r, *r, *r, *r, *r, *r, *r, *r, *r]
                  - repeat: 1
                    steps: &c [&q {repeat: 1, steps: *b}, *q, *q, *q, *q, *q, *q, *q, *q, *q]
                  - repeat: 1
                    steps: &d [&p {repeat: 1, steps: *c}, *p, *p, *p, *p, *p, *p, *p, *p, *p]
                  - repeat: 1
                    steps: [&o {repeat: 1, steps: *d}, *o, *o, *o, *o, *o, *o, *o, *o, *o]

            """, 4, 16, "more than 100000 YAML nodes once aliases are expanded"),
        ("executed steps", "workers:\n  - steps:\n      - repeat: 1000000\n        steps:\n          - repeat: 1001\n            steps:\n              - sleep: 1ms\n",
         3, 7, "would execute 1001000000 steps (repeat counts multiply); at most 1000000000"),
        ("planned steps", "workers:\n  - count: 4096\n    steps:\n" + String(repeating: "      - sleep: 1ms\n", count: 250),
         2, 3, "the workers' plans would hold 1024000 steps (each worker process gets its own plan: steps × count); at most 1000000"),
        ("key length", "resources:\n  s: {kind: segment, size: 64, key: \(String(repeating: "k", count: 300))}\nworkers:\n  - steps:\n      - attach: s\n",
         2, 37, "the segment key is 300 bytes long; at most 256"),
        ("resource id length", "resources:\n  \(String(repeating: "r", count: 65)): {kind: memfd, size: 4096}\nworkers:\n  - steps:\n      - sleep: 1ms\n",
         2, 3, "the resource id is 65 bytes long; at most 64"),
        ("worker name length", "workers:\n  - name: \(String(repeating: "w", count: 65))\n    steps:\n      - sleep: 1ms\n",
         2, 11, "the worker name is 65 bytes long; at most 64"),
        ("barrier name length", "workers:\n  - steps:\n      - barrier: \(String(repeating: "b", count: 65))\n",
         3, 18, "the barrier name is 65 bytes long; at most 64"),
        ("value length", "summary: \(String(repeating: "x", count: 65_537))\nworkers:\n  - steps:\n      - sleep: 1ms\n",
         1, 10, "summary is 65537 bytes long; a value is at most 65536 bytes"),
        ("substitution growth", "matrix:\n  v: [\(String(repeating: "x", count: 40_000))]\nsummary: ${v}${v}\nworkers:\n  - steps:\n      - sleep: 1ms\n",
         3, 10, "once ${...} is substituted; a value is at most 65536 bytes"),
        ("dir length", "resources:\n  f: {kind: file, size: 4096, dir: /\(String(repeating: "d", count: 3100))}\nworkers:\n  - steps:\n      - sleep: 1ms\n",
         2, 36, "dir is 3101 bytes long; at most 3072"),
    ]

    @Test(arguments: limited.indices)
    func limitsNameThePlace(index: Int) throws {
        let (name, yaml, line, column, message) = Self.limited[index]
        let start = Date()
        try expectRefusal(name, yaml, line: line, column: column, message: message, file: "limits.yaml")
        #expect(Date().timeIntervalSince(start) < 5, "\(name) is refused in bounded time")
    }

    /// The limits are limits, not bans: just under each one loads.
    @Test func justUnderTheLimitsLoads() throws {
        let key = String(repeating: "k", count: ScenarioLimits.keyBytes)
        let id = String(repeating: "r", count: ScenarioLimits.nameBytes)
        let yaml = """
            resources:
              \(id): {kind: segment, size: 64, key: \(key)}
            workers:
              - steps:
                  - repeat: 1000000
                    steps:
                      - repeat: 1000
                        steps:
                          - attach: \(id)

            """
        let loaded = try ScenarioLoader.load(text: yaml, file: "under.yaml")
        #expect(loaded.count == 1)
        #expect(loaded[0].resources[0].key == key)
        // 4096 combinations of a small file (8 × 8 × 8 × 8).
        let matrix = "matrix:\n" + ["a", "b", "c", "d"].map { "  \($0): [1, 2, 3, 4, 5, 6, 7, 8]\n" }.joined() + "workers:\n  - steps:\n      - sleep: 1ms\n"
        #expect(try ScenarioLoader.load(text: matrix, file: "matrix.yaml").count == 4096)
    }

    // MARK: files that are not scenario files

    @Test func deviceFifoAndHugeFilesAreRefused() throws {
        let fifo = temporaryPath("fifo.yaml")
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let huge = temporaryPath("huge.yaml")
        #expect(FileManager.default.createFile(atPath: huge, contents: Data(repeating: UInt8(ascii: "#"), count: ScenarioLimits.fileBytes + 1)))
        defer { unlink(huge) }
        let binary = temporaryPath("binary.yaml")
        #expect(FileManager.default.createFile(atPath: binary, contents: Data([0x73, 0x3A, 0x20, 0xFF, 0xFE, 0x0A])))
        defer { unlink(binary) }
        for (path, message) in [
            ("/dev/zero", "/dev/zero:1:1: not a regular file (a character device)"),
            (fifo, "\(fifo):1:1: not a regular file (a FIFO)"),
            (huge, "\(huge):1:1: the file is \(ScenarioLimits.fileBytes + 1) bytes; a scenario file is at most \(ScenarioLimits.fileBytes) bytes"),
            (binary, "\(binary):1:4: not UTF-8 text"),
        ] {
            let run = try Measured.run([Paths.harness, "validate", path], timeout: 20)
            #expect(run.exitCode == 2 && run.cpuSeconds < 5 && run.seconds < 15, "\(path): \(run.summary)")
            #expect(run.stderr.contains(message), "\(path): \(run.stderr)")
        }
    }

    // MARK: options

    static let badOptions: [(arguments: [String], message: String)] = [
        (["create", "--key", "k", "--size", "-1"], "'--size <size>': must be ≥ 0"),
        (["dump", "--key", "k", "--offset", "-5"], "'--offset <offset>': must be ≥ 0"),
        (["dump", "--key", "k", "--length", "99999999999999999999"], "is too large"),
        (["run", "--jobs", "-1"], "'--jobs <jobs>': must be ≥ 1"),
        (["run", "--jobs", "1e300"], "'--jobs <jobs>': 1e300 is too large; at most 1024"),
        (["run", "--jobs", "2.5"], "'--jobs <jobs>': must be a whole number"),
        (["dump", "--key", "k", "--lock-timeout", "nan"], "must be a finite number of seconds"),
        (["write", "--key", "k", "--lock-timeout", "inf"], "must be a finite number of seconds"),
        (["dump", "--key", "k", "--lock-timeout", "1e300"], "must be at most 1000000000 seconds"),
        (["dump", "--key", "k", "--lock-timeout", "-1"], "must be ≥ 0"),
        (["create", "--key", "k", "--size", "64", "--hold-seconds", "-inf"], "must be a finite number of seconds"),
        (["run", "--filter", "["], "--filter '[' is not a valid glob: an unterminated ["),
        (["list", "--filter", "x\\"], "--filter 'x\\' is not a valid glob"),
        (["run", "--junit", "/nonexistent-shm-harness/dir/x.xml"], "the folder /nonexistent-shm-harness/dir does not exist"),
    ]

    /// Negative, non-finite and huge numbers, invalid globs and a report folder that does not exist: exit 2
    /// with a message, before anything happens (nothing is created, no folder appears).
    @Test(arguments: badOptions.indices)
    func badOptionsAreExitTwo(index: Int) throws {
        let (arguments, message) = Self.badOptions[index]
        let run = try Measured.run([Paths.harness] + arguments, timeout: 30)
        #expect(run.exitCode == 2, "\(arguments): \(run.summary)")
        #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        #expect(!run.stderr.contains("Missing value"), "\(arguments): \(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent-shm-harness"))
    }

    // MARK: a closed or broken standard error

    /// `run … 2>&-` and `run … 2>&1 | head -2`: progress is lost, the run is not. The exit status is the
    /// run's, the report is written, the journal and the run folder are gone.
    @Test(arguments: [Measured.StandardError.closed, .brokenPipe])
    func runSurvivesAClosedOrBrokenStandardError(mode: Measured.StandardError) throws {
        let place = try PrivateRunPlace()
        defer { place.remove() }
        for (fixture, status, verdict) in [("crash/quick.yaml", Int32(0), "failures=\"0\""), ("failing/wrong-expectation.yaml", 1, "<failure")] {
            let report = place.root + "/junit.xml"
            unlink(report)
            let run = try Measured.run(
                [Paths.harness, "run", "--no-isolate", "--leak-check", "own", "--junit", report, Paths.fixtures + "/" + fixture],
                environment: place.environment, stderr: mode, timeout: 120, memoryLimitKiB: nil)
            #expect(run.exitCode == status, "\(fixture) with stderr \(mode): \(run.summary)")
            let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
            #expect(xml.contains("<testcase") && xml.contains(verdict), "\(fixture): the report is written: \(xml.prefix(300))")
            #expect(place.leftovers().isEmpty, "\(fixture): left \(place.leftovers())")
        }
    }

    // MARK: the library: keys too long for a name

    @Test func keyTooLongForANameIsAKeyErrorAtOnce() throws {
        let start = Date()
        // 1 MB: a debug build derives Qt's name from it (letters, SHA-1) well within the bound below.
        let huge = String(repeating: "k", count: 1_000_000)
        for type in [NativeIPCKey.KeyType.systemV, .posixRealtime] {
            let segment = SharedMemory(legacyKey: huge, type: type)
            do {
                try segment.create(size: 64)
                Issue.record("created a segment with a 1 MB key")
                try? segment.detach()
            } catch {
                #expect(error.code == .keyError, "\(error)")
                #expect(error.description.contains("at most 255 (NAME_MAX)") || error.description.contains("at most 4095 (PATH_MAX)"), "\(error.description.prefix(300))")
                #expect(error.description.utf8.count < 2000, "the error does not copy the key")
            }
        }
        let longest = String(repeating: "s", count: 255 - "qipc_systemsem_".count - 40 - 4 + 1)
        do {
            _ = try SystemSemaphore(key: .legacy(longest, type: .posixRealtime, kind: .systemSemaphore), initialValue: 1, mode: .create)
            Issue.record("a POSIX semaphore name of 256 bytes with sem. was accepted")
        } catch {
            #expect(error.code == .keyError && error.description.contains("at most 251"), "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 5, "refused at once, not after a minute")
    }

    /// A journal that names a key too long for a file name (as from a run of an old version that was
    /// killed) is cleaned: such a name can name nothing.
    @Test func journalWithAKeyTooLongIsCleaned() throws {
        let place = try PrivateRunPlace()
        defer { place.remove() }
        let key = String(repeating: "k", count: 300)
        let runs = place.runs
        for path in [place.runtime + "/shm-harness", runs] { #expect(mkdir(path, 0o700) == 0) }
        let systemV = NativeIPCKey.legacy(key, type: .systemV, tempDirectory: place.temp).toString()!
        let posix = NativeIPCKey.legacy(key, type: .posixRealtime).toString()!
        let journal = runs + "/dead0001.journal"
        let text = "\(RunJournal.header)\nrun dead0001 pid=999999999 start=1 time=1\nsegment \(RunJournal.encode(systemV))\nsegment \(RunJournal.encode(posix))\n"
        #expect(FileManager.default.createFile(atPath: journal, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
        let run = try Measured.run([Paths.harness, "clean", "--stale"], environment: place.environment, timeout: 30)
        #expect(run.exitCode == 0, "\(run.summary)")
        #expect(!FileManager.default.fileExists(atPath: journal), "the journal is gone: \(run.stdout)")

        // And validate refuses such a key before any run could journal it.
        let file = place.root + "/long-key.yaml"
        try "resources:\n  s: {kind: segment, size: 64, key: \(key)}\nworkers:\n  - steps:\n      - attach: s\n".write(toFile: file, atomically: true, encoding: .utf8)
        let validate = try Measured.run([Paths.harness, "validate", file], timeout: 30)
        #expect(validate.exitCode == 2 && validate.stderr.contains("\(file):2:37: the segment key is 300 bytes long"), "\(validate.summary)")
    }
}
