import Foundation
import Testing
import TestSupport
import CShmShim

#if canImport(Glibc)
import Glibc
#endif

/// The README's library snippet is Examples/readme-library/main.swift, word for word, and running it (as a
/// program: top-level objects are never deinitialised at exit) leaves nothing behind.
@Suite struct ReadmeSnippetTests {
    static var example: String { TestEnvironment.packageRoot + "/Examples/readme-library/main.swift" }

    /// The first ```swift block after "## The library in brief".
    static func readmeSnippet() throws -> String {
        let readme = try String(contentsOfFile: TestEnvironment.packageRoot + "/README.md", encoding: .utf8)
        let lines = readme.components(separatedBy: "\n")
        guard let section = lines.firstIndex(of: "## The library in brief"),
            let open = lines[section...].firstIndex(of: "```swift"),
            let close = lines[(open + 1)...].firstIndex(of: "```")
        else { throw TestFailure("README.md has no ```swift block under \"## The library in brief\"") }
        return lines[(open + 1)..<close].joined(separator: "\n") + "\n"
    }

    @Test func theExampleIsTheReadmeSnippet() throws {
        #expect(try Self.readmeSnippet() == (try String(contentsOfFile: Self.example, encoding: .utf8)),
                "Examples/readme-library/main.swift must be the README's snippet")
    }

    @Test func theSnippetLeavesNothingBehind() throws {
        let binary = URL(fileURLWithPath: TestEnvironment.harness).deletingLastPathComponent().appendingPathComponent("readme-library").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "swift build builds \(binary)")
        // Its own temp folder: Qt's key files of "counter" and "jobs" go there, and nothing else does.
        var template = Array("\(NSTemporaryDirectory())/shm-harness-readme-XXXXXX".utf8CString)
        let folder = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let run = try ChildProcess([binary], environment: ["TMPDIR": folder])
        run.closeInput()
        let status = try run.wait(timeout: 60)
        #expect(status.exitCode == 0, "\(run.standardError())")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder)
        // The library removes a key file only with its object (after it): a System V segment or semaphore set
        // left behind keeps its key file here. (The test command's whole-run leak check sees the objects too.)
        #expect(left.isEmpty, "the snippet left key files behind (and their System V objects): \(left)")
        for name in left { Self.removeLeftover(folder + "/" + name) }
    }

    /// Removes what a failing run left: the System V objects of a key file (ftok 'Q'), then the file.
    static func removeLeftover(_ path: String) {
        let key = ftok(path, 81)
        if key != -1 {
            let sem = semget(key, 0, 0)
            if sem >= 0 { _ = shm_shim_semctl_rmid(sem) }
            let shm = shmget(key, 0, 0)
            if shm >= 0 { shmctl(shm, IPC_RMID, nil) }
        }
        unlink(path)
    }
}
