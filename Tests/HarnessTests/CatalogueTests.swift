import Foundation
import ScenarioKit
import Testing

@testable import Harness

/// What the built-in catalogue (scenarios/) promises its users: each file says what it proves, every
/// differential scenario is linked from the README's table of differences from Qt, and nothing in it is
/// left unlinked or unexplained. (That every testcase passes in strict mode, in debug and release builds,
/// without leaks, is the test command's main-job step: scripts/test.sh.)
@Suite struct CatalogueTests {
    static let root = Paths.packageRoot + "/scenarios"

    static func files() throws -> [String] {
        try ScenarioLoader.files(at: root).sorted()
    }

    static func relative(_ file: String) -> String {
        file.hasPrefix(Paths.packageRoot + "/") ? String(file.dropFirst(Paths.packageRoot.count + 1)) : file
    }

    /// A scenario without a summary cannot be listed in the README nor read in a report: refused here.
    @Test func everyScenarioSaysWhatItProves() throws {
        var missing: [String] = []
        for file in try Self.files() {
            let scenarios = try ScenarioLoader.load(file: file, root: Self.root)
            if scenarios.contains(where: { $0.summary.trimmingCharacters(in: .whitespacesAndNewlines).count < 20 }) {
                missing.append(Self.relative(file))
            }
        }
        #expect(missing.isEmpty, "scenarios without a summary of what they prove: \(missing)")
    }

    /// The check above can fail: a file without a summary is found.
    @Test func aScenarioWithoutASummaryIsFound() throws {
        let folder = NSTemporaryDirectory() + "catalogue-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder + "/scenarios/x", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/scenarios/x/bare.yaml"
        try "workers:\n  - steps:\n      - sleep: 1ms\n".write(toFile: file, atomically: true, encoding: .utf8)
        let loaded = try ScenarioLoader.load(file: file, root: folder + "/scenarios")
        #expect(loaded.allSatisfy { $0.summary.isEmpty })
    }

    /// Every differential scenario (a `divergence:` anywhere) is linked from the README, so a reader of the
    /// table of differences from Qt finds the scenario that shows each one.
    @Test func everyDifferentialScenarioIsLinkedFromTheReadme() throws {
        let readme = try String(contentsOfFile: Paths.packageRoot + "/README.md", encoding: .utf8)
        var unlinked: [String] = []
        var differential = 0
        for file in try Self.files() {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            guard text.contains("divergence:") else { continue }
            differential += 1
            let path = Self.relative(file)
            if !readme.contains("](\(path))") { unlinked.append(path) }
        }
        #expect(differential >= 3, "the catalogue shows where Qt differs")
        #expect(unlinked.isEmpty, "differential scenarios the README's \"Differences from Qt\" table does not link: \(unlinked)")
    }

    /// Every scenario the README links exists (a renamed file leaves no dead link).
    @Test func everyScenarioTheReadmeLinksExists() throws {
        let readme = try String(contentsOfFile: Paths.packageRoot + "/README.md", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"\]\((scenarios/[^)#]+\.ya?ml)\)"#)
        let range = NSRange(readme.startIndex..., in: readme)
        let linked = pattern.matches(in: readme, range: range).compactMap { Range($0.range(at: 1), in: readme).map { String(readme[$0]) } }
        #expect(!linked.isEmpty)
        let dead = Set(linked).filter { !FileManager.default.fileExists(atPath: Paths.packageRoot + "/" + $0) }
        #expect(dead.isEmpty, "README links scenarios that do not exist: \(dead.sorted())")
    }
}
