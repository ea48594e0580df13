import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What users build: `swift build -c release` must behave as debug. The optimizer once dropped touch-all's
/// plain loads (they fed only `withExtendedLifetime`), so the release worker exited 0 where it had to die of
/// SIGBUS; the loads are volatile now. These run the release binaries when they are there (scripts/test.sh
/// builds them; SHM_HARNESS_RELEASE_BIN names another `shm-harness`).
@Suite(.serialized) struct ReleaseBuildTests {
    static let releaseHarness: String? = {
        let candidates = [ProcessInfo.processInfo.environment["SHM_HARNESS_RELEASE_BIN"], Paths.packageRoot + "/.build/release/shm-harness"]
        return candidates.compactMap { $0 }.first { !$0.isEmpty && FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// The binaries the tests run: this build's, and the release build's when there is one.
    static var harnesses: [String] { [Paths.harness] + (releaseHarness.map { [$0] } ?? []) }

    @Test(.enabled(if: releaseHarness != nil, "no release build (swift build -c release, as scripts/test.sh does, or SHM_HARNESS_RELEASE_BIN)"))
    func releaseBuildIsThere() throws {
        let harness = try #require(Self.releaseHarness)
        let version = try Run.command([harness, "--help"])
        #expect(version.exitCode == 0)
    }

    /// truncate/shrink-under-reader.yaml: after a shrink (tmpfs and disk) the checked reader gets bus-error and touch-all's plain loads die of
    /// SIGBUS, for the Swift and the C worker, in every build at hand.
    @Test(arguments: harnesses)
    func touchAllDiesOfSIGBUSAfterAShrink(harness: String) throws {
        let report = temporaryPath("shrink.xml")
        defer { unlink(report) }
        let run = try Run.command([harness, "run", "--leak-check", "own", "--junit", report, Paths.packageRoot + "/scenarios/truncate/shrink-under-reader.yaml"])
        let xml = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        #expect(run.exitCode == 0, "\(harness): \(run.stdout)\(run.stderr)")
        for dir in ["tmpfs", "disk"] {
            #expect(xml.contains("name=\"shrink-under-reader[dir=\(dir),impl=swift]\"") && xml.contains("name=\"shrink-under-reader[dir=\(dir),impl=c]\""))
        }
        #expect(!xml.contains("<failure") && !xml.contains("<error") && !xml.contains("<skipped"), "\(xml)")
    }
}
