import Foundation
import Harness
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The repository itself: no absolute path of any machine, no cited document missing
/// (scripts/check-repository.sh, which the test command runs too), and the check can fail.
@Suite struct RepositoryTests {
    static let script = Paths.packageRoot + "/scripts/check-repository.sh"

    @Test func noMachinePathAndNoMissingDocument() throws {
        let result = try Run.command(["/bin/bash", Self.script, Paths.packageRoot])
        #expect(result.exitCode == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasSuffix("check-repository: 2 passed, 0 failed\n"), "\(result.stdout)")
    }

    /// Negative control: a checkout with a machine path and a cited document that is not there fails, naming both.
    @Test func theCheckFindsAMachinePathAndAMissingDocument() throws {
        let folder = temporaryPath("repo")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/docs", withIntermediateDirectories: true)
        // names split so that this file does not trip the check itself
        let home = "/" + "home/alice/project"
        let present = "docs/" + "present.md"
        let absent = "docs/" + "absent.md"
        try "# x\nsee \(present) and [the guide](\(present))\nbuild in \(home)/build\n".write(toFile: folder + "/README.md", atomically: true, encoding: .utf8)
        try "ok\n".write(toFile: folder + "/" + present, atomically: true, encoding: .utf8)
        let clean = try Run.command(["/bin/bash", Self.script, folder])
        #expect(clean.exitCode == 1)
        #expect(clean.stdout.contains("README.md:3:build in \(home)/build"), "\(clean.stdout)")
        #expect(clean.stdout.contains("1 passed, 1 failed"), "only the machine path is wrong so far: \(clean.stdout)")
        try "# y\nas \(absent) says, and [this](../nowhere.md)\n".write(toFile: folder + "/" + present, atomically: true, encoding: .utf8)
        let both = try Run.command(["/bin/bash", Self.script, folder])
        #expect(both.exitCode == 1)
        #expect(both.stdout.contains("\(present):2: names \(absent), which does not exist"), "\(both.stdout)")
        #expect(both.stdout.contains("\(present):2: links to ../nowhere.md, which does not exist"), "\(both.stdout)")
        #expect(both.stdout.hasSuffix("check-repository: 0 passed, 2 failed\n"), "\(both.stdout)")
    }

    /// docs/scenario-format.md says its two examples are the files the tests load: they are, line for line.
    @Test func theScenarioReferenceExamplesAreTheFixtures() throws {
        let doc = try String(contentsOfFile: Paths.packageRoot + "/docs/scenario-format.md", encoding: .utf8)
        var blocks: [String] = []
        var current: [String]?
        for line in doc.components(separatedBy: "\n") {
            if line == "```yaml" { current = [] } else if line == "```", let block = current { blocks.append(block.joined(separator: "\n") + "\n"); current = nil } else { current?.append(line) }
        }
        try #require(blocks.count >= 2, "the reference shows two examples")
        for (index, block) in blocks.prefix(2).enumerated() {
            let fixture = try String(contentsOfFile: Paths.fixtures + "/contract/example-\(index + 1).yaml", encoding: .utf8)
            #expect(block == fixture, "example \(index + 1) of docs/scenario-format.md differs from Fixtures/contract/example-\(index + 1).yaml")
        }
    }

    /// Negative control of `Processes.waitUntilGone`: a process that does not end makes it throw, naming it.
    @Test func waitingForProcessesFailsLoudly() throws {
        let sleeper = try SpawnedProcess(label: "sleep", arguments: ["/bin/sleep", "30"], environment: [:])
        defer { sleeper.killGroup(); sleeper.wait() }
        let entry = try #require(Processes.stat(sleeper.pid).map { Processes.Entry(pid: sleeper.pid, start: $0.start) })
        #expect(Processes.descendants(of: getpid()).contains(entry))
        do {
            try Processes.waitUntilGone([entry], timeout: 0.3, what: "the sleeper")
            Issue.record("waitUntilGone returned while the process lives")
        } catch let failure as TestFailure {
            #expect(failure.description.contains("the sleeper: still running after 0.3s: \(sleeper.pid) (/bin/sleep 30"), "\(failure)")
        }
        kill(sleeper.pid, SIGKILL)
        sleeper.wait()
        try Processes.waitUntilGone([entry], timeout: 5, what: "the killed sleeper")
    }
}
