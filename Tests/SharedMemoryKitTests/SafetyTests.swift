import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Safer than Qt: no symlinks followed, no squatted or foreign objects used without consent, nothing left
/// behind by failures.
@Suite struct SafetyTests {
    static func cli(_ key: NativeIPCKey) -> [String] { ["--native-key", key.toString()!] }

    @Test func systemVKeyFileSymlinkIsRefusedAndTheTargetUntouched() throws {
        let key = TestEnvironment.uniqueKey(.systemV)
        let victim = "\(TempDirectory.qtTempPath())/\(TestEnvironment.uniqueName())-victim"
        #expect(FileManager.default.createFile(atPath: victim, contents: Data("precious".utf8)))
        defer { unlink(victim) }
        try #require(symlink(victim, key.nativeKey) == 0)
        defer { unlink(key.nativeKey) }
        let memory = SharedMemory(key: key)
        do { try memory.create(size: 64); Issue.record("create went through a symlinked key file") } catch {
            #expect(error.code == .permissionDenied)
            #expect(error.description.contains("symbolic link"))
        }
        do { try memory.attach(); Issue.record("attach went through a symlinked key file") } catch {
            #expect(error.code == .permissionDenied)
        }
        #expect(FileManager.default.contents(atPath: victim) == Data("precious".utf8))
        unlink(key.nativeKey)
        #expect(Traces.of(key).isEmpty, "no lock semaphore left behind by the refusals")
    }

    @Test func posixSymlinkInDevShmIsRefused() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let path = "/dev/shm" + key.nativeKey
        let victim = "\(TempDirectory.qtTempPath())/\(TestEnvironment.uniqueName())-victim"
        #expect(FileManager.default.createFile(atPath: victim, contents: Data(repeating: 7, count: 4096)))
        defer { unlink(victim) }
        try #require(symlink(victim, path) == 0)
        defer { unlink(path) }
        let memory = SharedMemory(key: key)
        do { try memory.create(size: 64); Issue.record("create over a symlink succeeded") } catch {
            #expect(error.code == .alreadyExists)
        }
        do { try memory.attach(); Issue.record("attach through a symlink succeeded") } catch {
            #expect(error.code == .permissionDenied)
        }
        #expect(FileManager.default.contents(atPath: victim) == Data(repeating: 7, count: 4096))
        unlink(path)
        #expect(Traces.of(key).isEmpty)
    }

    @Test(.enabled(if: TestEnvironment.isRoot, "needs root to give a file to another uid"))
    func keyFileOfAnotherUserIsNeitherUsedNorTruncated() throws {
        let key = TestEnvironment.uniqueKey(.systemV)
        #expect(FileManager.default.createFile(atPath: key.nativeKey, contents: Data("squatter".utf8)))
        defer { unlink(key.nativeKey) }
        try #require(chown(key.nativeKey, 65534, 65534) == 0)
        let memory = SharedMemory(key: key)
        do { try memory.create(size: 64); Issue.record("create used a squatted key file") } catch {
            #expect(error.code == .permissionDenied)
            #expect(error.description.contains("uid 65534"))
        }
        #expect(FileManager.default.contents(atPath: key.nativeKey) == Data("squatter".utf8))
        unlink(key.nativeKey)
        #expect(Traces.of(key).isEmpty)
    }

    @Test(.enabled(if: TestEnvironment.secondUserUnavailableReason == nil, "cannot run as nobody here"), arguments: Backend.allCases)
    func anotherUsersSegmentNeedsConsent(backend: Backend) throws {
        let key = TestEnvironment.uniqueSharedKey(backend.type)  // nobody makes the key file
        let creator = try TestEnvironment.harnessAsNobody(["create", "--size", "64"] + Self.cli(key))
        #expect(creator.readLine(timeout: 20) == key.toString(), "\(creator.standardError())")
        let refused = SharedMemory(key: key)
        do { try refused.attach(); Issue.record("attached to nobody's segment without consent") } catch {
            #expect(error.code == .permissionDenied)
            #expect(error.description.contains("allowForeignOwner"))
        }
        let consenting = SharedMemory(key: key, options: .init(allowForeignOwner: true))
        try consenting.attach(.readOnly)
        #expect(consenting.size == 64)
        try consenting.detach()
        kill(creator.pid, SIGTERM)
        #expect(try creator.wait().exitCode == 0, "\(creator.standardError())")
        #expect(Traces.of(key).isEmpty)
    }

    @Test(.enabled(if: TestEnvironment.secondUserUnavailableReason == nil, "cannot run as nobody here"), arguments: Backend.allCases)
    func otherUsersAreKeptOut(backend: Backend) throws {
        // the key file in nobody's temp folder too (its TMPDIR): what keeps nobody out is the permission
        let key = TestEnvironment.uniqueSharedKey(backend.type)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        let stranger = try TestEnvironment.harnessAsNobody(["dump"] + Self.cli(key))
        let status = try stranger.wait(timeout: 30)
        #expect(status.exitCode == 1)
        #expect(stranger.standardError().contains("permission-denied"))
        try owner.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func badNamesAreKeyErrors(backend: Backend) throws {
        let names: [String] =
            backend == .posix
            ? ["/a/b", "/", String(repeating: "x", count: 300)]
            : ["/nonexistent-dir-\(getpid())/key", "/tmp/" + String(repeating: "x", count: 300)]
        for name in names {
            let memory = SharedMemory(key: NativeIPCKey(name, type: backend.type))
            do { try memory.create(size: 64); Issue.record("create(\(name)) succeeded") } catch {
                #expect([.keyError, .notFound].contains(error.code), "\(error)")
            }
        }
    }

    /// A legacy key of more than 197 letters overflows NAME_MAX, as in Qt: a clean key-error, nothing made.
    @Test(arguments: Backend.allCases)
    func tooLongLegacyKey(backend: Backend) throws {
        let key = NativeIPCKey.legacy(String(repeating: "k", count: 240), type: backend.type)
        let memory = SharedMemory(key: key)
        do { try memory.create(size: 64); Issue.record("create with a 298-byte name succeeded") } catch {
            #expect(error.code == .keyError, "\(error)")
        }
    }
}
