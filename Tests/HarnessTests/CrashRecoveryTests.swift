import Foundation
import Harness
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A run SIGKILLed mid-scenario leaves objects; the next run (or `clean --stale`) removes them, because the
/// run journaled them before making them. Every `run` cleans the stale journals of its runtime folder at its
/// start, and tests of other suites start runs at the same time: the killed run and the runs that must clean up
/// after it use a runtime folder of their own (`runtime`), so that no other test's run cleans its journal first.
extension RunnerTests {
    /// Starts a run of the long fixture with XDG_RUNTIME_DIR `runtime`, waits until its journal names the
    /// objects and they exist, SIGKILLs the runner, and returns the journal's path and what it names.
    func killedRun(isolate: Bool, runtime: String) throws -> (journal: String, keys: [NativeIPCKey], files: [String], workDirectories: [String]) {
        // A runtime folder of this test's own: no other run (of this test process or another) sees or cleans it.
        let runs = JournalDirectory.runsDirectory(xdgRuntimeDir: runtime)
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? [])
        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let runner = try SpawnedProcess(
            label: "runner", arguments: [Paths.harness, "run", isolate ? "--isolate" : "--no-isolate", "--leak-check", "own", "--junit", report, Paths.fixtures + "/crash/long.yaml"],
            environment: ProcessInfo.processInfo.environment.merging(["XDG_RUNTIME_DIR": runtime]) { _, new in new })
        runner.closeInput()
        let deadline = Date().addingTimeInterval(30)
        var found: (String, RunJournal)?
        while Date() < deadline && found == nil {
            usleep(100_000)
            for name in Set((try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []).subtracting(before) {
                guard let journal = try? RunJournal.read(at: runs + "/" + name), journal.segments.contains(where: { $0.contains("crashrun") }) else { continue }
                let keys = journal.segmentKeys
                let segmentsExist = isolate || keys.allSatisfy { key in
                    key.type.isSystemV ? FileManager.default.fileExists(atPath: key.nativeKey) : FileManager.default.fileExists(atPath: "/dev/shm" + key.nativeKey)
                }
                if segmentsExist && journal.files.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) { found = (runs + "/" + name, journal) }
            }
        }
        // What the runner started (workers, the isolated testcase process and its workers) must die with it.
        let started = Processes.descendants(of: runner.pid)
        runner.killGroup()  // the runner's own group: the runner alone (its workers have their own groups)
        kill(runner.pid, SIGKILL)
        runner.wait()
        let (path, journal) = try #require(found, "the run journaled and made its objects")
        try Processes.waitUntilGone(started, what: "the killed runner's processes (parent-death signal)")
        return (path, journal.segmentKeys, journal.files, journal.workDirectories)
    }

    func leftovers(_ keys: [NativeIPCKey], _ files: [String]) -> [String] {
        var left: [String] = files.filter { FileManager.default.fileExists(atPath: $0) }
        for key in keys + keys.map({ $0.lockSemaphoreKey() }) {
            if key.type.isSystemV {
                if FileManager.default.fileExists(atPath: key.nativeKey) { left.append(key.nativeKey) }
            } else {
                let bare = key.nativeKey.dropFirst()
                for path in ["/dev/shm/\(bare)", "/dev/shm/sem.\(bare)"] where FileManager.default.fileExists(atPath: path) { left.append(path) }
            }
        }
        return left
    }

    @Test func theNextRunCleansUpAfterAKilledRun() throws {
        let runtime = try Paths.privateRuntimeDirectory()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let (journal, keys, files, _) = try killedRun(isolate: false, runtime: runtime)
        let left = leftovers(keys, files)
        #expect(!left.isEmpty, "the killed run left its objects (else this test proves nothing)")
        let ls = try Run.harness(["ls", "--json"], runtimeDirectory: runtime)
        let json = try JSONSerialization.jsonObject(with: Data(ls.stdout.utf8)) as? [String: Any]
        let objects = json?["objects"] as? [[String: Any]] ?? []
        let mine = objects.filter { ($0["path"] as? String).map { p in left.contains { $0 == p } } ?? false }
        #expect(!mine.isEmpty && mine.allSatisfy { $0["stale"] as? Bool == true }, "ls marks them stale: \(mine)")

        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let next = try Run.harness(["run", "--no-isolate", "--leak-check", "own", "--junit", report, Paths.fixtures + "/crash/quick.yaml"], runtimeDirectory: runtime)
        #expect(next.exitCode == 0, "\(next.stderr)")
        #expect(next.stderr.contains("a previous run died"))
        #expect(leftovers(keys, files).isEmpty, "left: \(leftovers(keys, files))")
        #expect(!FileManager.default.fileExists(atPath: journal))
    }

    @Test func cleanStaleCleansUpAfterAKilledRun() throws {
        let runtime = try Paths.privateRuntimeDirectory()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let (journal, keys, files, _) = try killedRun(isolate: false, runtime: runtime)
        #expect(!leftovers(keys, files).isEmpty)
        let token = URL(fileURLWithPath: journal).deletingPathExtension().lastPathComponent
        let clean = try Run.harness(["clean", "--stale", "--match", token], runtimeDirectory: runtime)
        #expect(clean.exitCode == 0, "\(clean.stderr)")
        #expect(clean.stdout.contains("removed"))
        #expect(leftovers(keys, files).isEmpty, "left: \(leftovers(keys, files))")
        #expect(!FileManager.default.fileExists(atPath: journal))
    }

    @Test(.enabled(if: geteuid() == 0, "namespaces need root"))
    func anIsolatedKilledRunLeavesOnlyJournaledFiles() throws {
        let runtime = try Paths.privateRuntimeDirectory()
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let (journal, keys, files, workDirectories) = try killedRun(isolate: true, runtime: runtime)
        // Segments lived in the testcase's namespaces (its own /dev/shm) and went with them: nothing on the
        // host's /dev/shm. Key files (in the run's private folder) and the disk file are journaled.
        #expect(leftovers(keys.filter { !$0.type.isSystemV }, []).isEmpty)
        #expect(!workDirectories.isEmpty)
        let report = temporaryPath("junit.xml")
        defer { unlink(report) }
        let next = try Run.harness(["run", "--leak-check", "own", "--junit", report, Paths.fixtures + "/crash/quick.yaml"], runtimeDirectory: runtime)
        #expect(next.exitCode == 0, "\(next.stderr)")
        #expect(leftovers(keys, files).isEmpty, "left: \(leftovers(keys, files))")
        #expect(workDirectories.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "the run's folder went too")
        #expect(!FileManager.default.fileExists(atPath: journal))
    }
}
