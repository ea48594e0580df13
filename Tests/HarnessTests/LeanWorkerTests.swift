import Foundation
@testable import Harness
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The lean Swift worker (`shm-harness-worker`, issue 11): a worker process without Foundation, which the
/// runner starts for impl: swift and impl: exec.
@Suite struct LeanWorkerTests {
    static let leanWorker = (Paths.harness as NSString).deletingLastPathComponent + "/shm-harness-worker"

    /// The shared libraries a worker process has mapped, read from /proc/PID/maps while it waits at a barrier.
    static func mappedLibraries(of command: [String]) throws -> [String] {
        let plan = temporaryPath("lean.plan")
        defer { unlink(plan) }
        try "shm-harness-plan 1\nfile lean\nworker w 0 1\nstep 1 barrier name=look\nend\n".write(toFile: plan, atomically: false, encoding: .utf8)
        let child = try ChildProcess(command + [plan])
        #expect(child.readLine() == "barrier look", "\(command) did not reach the barrier: \(child.standardError())")
        let maps = (try? String(contentsOfFile: "/proc/\(child.pid)/maps", encoding: .utf8)) ?? ""
        child.send("go look")
        let rest = child.remainingOutput()
        #expect(try child.wait().exitCode == 0)
        #expect(rest.last?.hasPrefix("result {") == true && rest.last?.contains("\"ok\":true") == true, "\(rest)")
        return Set(maps.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).last.flatMap { $0.contains(".so") ? String($0) : nil }
        }).sorted()
    }

    @Test func theSwiftWorkerMapsNoFoundation() throws {
        let libraries = try Self.mappedLibraries(of: [Self.leanWorker])
        #expect(!libraries.isEmpty, "no shared library seen: the maps were not read")
        #expect(libraries.contains { $0.contains("libc.so") }, "\(libraries)")
        #expect(!libraries.contains { $0.contains("Foundation") || $0.contains("icu") }, "\(libraries)")
    }

    /// Whether an executable file holds Foundation's code or references it: any Foundation type's metadata or
    /// symbol names the module `FoundationEssentials` (the lean worker links the Swift runtime statically, so
    /// its shared libraries alone would not show Foundation linked in).
    static func mentionsFoundation(_ path: String) throws -> Bool {
        try Data(contentsOf: URL(fileURLWithPath: path)).range(of: Data("FoundationEssentials".utf8)) != nil
    }

    @Test func theSwiftWorkerHoldsNoFoundationCode() throws {
        #expect(try !Self.mentionsFoundation(Self.leanWorker))
        // negative control: the whole binary, which links Foundation
        #expect(try Self.mentionsFoundation(Paths.harness))
    }

    /// Negative control: the same check sees Foundation in `shm-harness worker` (the whole command line binary).
    @Test func theCheckSeesFoundationInTheWholeBinary() throws {
        let libraries = try Self.mappedLibraries(of: [Paths.harness, "worker"])
        #expect(libraries.contains { $0.contains("libFoundation") }, "\(libraries)")
    }

    /// The runner starts the lean worker for impl: swift and impl: exec (`--exec`), and falls back to
    /// `shm-harness worker` only when it is not built beside the runner.
    @Test func theRunnerStartsTheLeanWorker() throws {
        let found = RunEnvironment.findSwiftWorker(beside: Paths.harness)
        #expect(found == Self.leanWorker)
        #expect(RunEnvironment.swiftWorkerCommand(found, harnessPath: Paths.harness) == [Self.leanWorker])
        // negative control: nothing beside a binary in an empty folder
        #expect(RunEnvironment.findSwiftWorker(beside: "/nonexistent-folder/shm-harness") == nil)
        #expect(RunEnvironment.swiftWorkerCommand(nil, harnessPath: Paths.harness) == [Paths.harness, "worker"])
    }

    @Test func theLeanWorkerRefusesBadCommandLines() throws {
        for arguments in [[String](), ["--bogus"], ["a.plan", "b.plan"], ["--exec"], ["--user"]] {
            let run = try Run.command([Self.leanWorker] + arguments)
            #expect(run.exitCode == 2, "\(arguments): \(run.stdout)\(run.stderr)")
            #expect(run.stderr.contains("shm-harness worker:"), "\(arguments): \(run.stderr)")
        }
    }
}
