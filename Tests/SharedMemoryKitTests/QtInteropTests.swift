import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Live interop with real Qt 6.12 (PySide6) on one key, in both directions, on both backends.
@Suite(.enabled(if: TestEnvironment.qtUnavailableReason == nil, "Qt peer unavailable: run scripts/qt-venv.sh"))
struct QtInteropTests {
    static func cli(_ key: NativeIPCKey) -> [String] { ["--native-key", key.toString()!] }

    static func readCounter(_ memory: SharedMemory) throws -> UInt64 {
        try memory.read(at: 0, count: 8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// Qt's POSIX backend never unlinks: remove what a Qt-created POSIX segment leaves, as Qt's own tests do.
    static func removeQtLeftovers(_ key: NativeIPCKey) {
        guard key.type == .posixRealtime else { return }
        shm_unlink(key.nativeKey)
    }

    @Test(arguments: Backend.allCases)
    func qtCreatesSwiftAttaches(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let qt = try QtPeer("create", key: key, ["--size", "1000", "--hold"])
        let ready = try qt.expectEvent("ready")
        #expect(ready["size"] as? Int == 1000)
        leaks.remember()
        #expect(try QtPeer.run("write", key: key, ["--offset", "10", "--hex", "51742d6d616465"])["ok"] as? Bool == true)

        let swift = SharedMemory(key: key)
        try swift.attach()
        #expect(swift.size == 1000)
        #expect(try swift.read(at: 10, count: 7) == Array("Qt-made".utf8))
        try swift.withLock { try swift.write(Array("Swift".utf8), at: 100) }
        let read = try QtPeer.run("read", key: key, ["--offset", "100", "--length", "5"])
        #expect(read["hex"] as? String == Array("Swift".utf8).hex)
        try swift.detach()
        #expect(try qt.finish()["ok"] as? Bool == true)
        Self.removeQtLeftovers(key)
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func swiftCreatesQtAttaches(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let swift = SharedMemory(key: key)
        try swift.create(size: 4097)
        leaks.remember()
        try swift.write(Array("from Swift".utf8), at: 0)
        let qt = try QtPeer("attach", key: key, ["--hold"])
        #expect(try qt.expectEvent("ready")["size"] as? Int == 4097)
        let read = try QtPeer.run("read", key: key, ["--offset", "0", "--length", "10"])
        #expect(read["hex"] as? String == Array("from Swift".utf8).hex)
        #expect(try QtPeer.run("write", key: key, ["--offset", "20", "--hex", "5174"])["ok"] as? Bool == true)
        #expect(try swift.read(at: 20, count: 2) == Array("Qt".utf8))
        #expect(try qt.finish()["ok"] as? Bool == true)
        try swift.detach()
        leaks.expectClean()
    }

    /// Qt holds the segment's lock: Swift cannot take it until Qt lets go.
    @Test(arguments: Backend.allCases)
    func qtLockExcludesSwift(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let swift = SharedMemory(key: key)
        try swift.create(size: 64)
        leaks.remember()
        let qt = try QtPeer("hold-lock", key: key)
        try qt.expectEvent("locked")
        #expect(try !swift.tryLock())
        #expect(throws: SharedMemoryError.self) { try swift.lock(timeout: .milliseconds(200)) }
        #expect(try qt.finish()["ok"] as? Bool == true)
        try swift.lock(timeout: .seconds(10))
        try swift.unlock()
        try swift.detach()
        leaks.expectClean()
    }

    /// Swift holds the lock: a Qt process that adds under the lock waits until Swift lets go.
    @Test(arguments: Backend.allCases)
    func swiftLockExcludesQt(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let swift = SharedMemory(key: key)
        try swift.create(size: 64)
        try swift.lock()
        let qt = try QtPeer("add", key: key, ["--offset", "0", "--iterations", "1"])
        qt.process.closeInput()
        try qt.expectEvent("attaching")
        try qt.process.expectBlocked()  // Qt must wait for the lock Swift holds (its attach() takes it already)
        #expect(try Self.readCounter(swift) == 0)
        try swift.unlock()
        var last = try qt.next()
        while last["ok"] == nil { last = try qt.next() }
        #expect(last["ok"] as? Bool == true)
        try qt.process.wait()
        #expect(try Self.readCounter(swift) == 1)
        try swift.detach()
        #expect(Traces.of(key).isEmpty)
    }

    /// Qt and Swift processes hammer one counter under the one lock: no update is lost.
    @Test(arguments: Backend.allCases)
    func mixedCounterLosesNothing(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let owner = SharedMemory(key: key)
        try owner.create(size: 64)
        leaks.remember()
        let iterations = 1000
        let qtPeers = try (0..<2).map { _ in try QtPeer("add", key: key, ["--offset", "0", "--iterations", "\(iterations)"]) }
        let swiftPeers = try (0..<2).map { _ in
            try TestEnvironment.harness(["debug", "add", "--iterations", "\(iterations)"] + Self.cli(key))
        }
        for peer in qtPeers {
            peer.process.closeInput()
            var last = try peer.next(timeout: 120)
            while last["ok"] == nil { last = try peer.next(timeout: 120) }
            #expect(last["ok"] as? Bool == true, "\(last)")
            try peer.process.wait()
        }
        for peer in swiftPeers { #expect(try peer.wait(timeout: 120).exitCode == 0, "\(peer.standardError())") }
        #expect(try Self.readCounter(owner) == UInt64(4 * iterations))
        try owner.detach()
        leaks.expectClean()
    }

    /// Qt's create on an existing key fails with AlreadyExists, on a Swift-made segment too.
    @Test(arguments: Backend.allCases)
    func qtSeesAlreadyExists(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let swift = SharedMemory(key: key)
        try swift.create(size: 64)
        let result = try QtPeer.run("create", key: key, ["--size", "64"])
        #expect(result["ok"] as? Bool == false)
        #expect(result["error"] as? String == "AlreadyExists")
        try swift.detach()
        Self.removeQtLeftovers(key.lockSemaphoreKey())
        #expect(Traces.of(key).isEmpty)
    }

    /// Difference from Qt, documented: a POSIX segment Qt created is left in /dev/shm after every process
    /// detached (Qt never unlinks), and ours does not remove it either: it is Qt's. Qt's next create then
    /// fails with AlreadyExists; attach still works.
    @Test func qtPOSIXSegmentIsLeftToQt() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        #expect(try QtPeer.run("create", key: key, ["--size", "64"])["ok"] as? Bool == true)
        #expect(FileManager.default.fileExists(atPath: "/dev/shm" + key.nativeKey), "Qt leaks its POSIX segment")
        let swift = SharedMemory(key: key)
        try swift.attach()
        try swift.detach()
        #expect(FileManager.default.fileExists(atPath: "/dev/shm" + key.nativeKey), "ours leaves Qt's segment alone")
        Self.removeQtLeftovers(key)
        #expect(Traces.of(key).isEmpty)
    }

    /// A POSIX segment this library created goes at the last detach of a process using the library, even if a
    /// Qt process is still attached: Qt keeps its mapping, new attachers see NotFound (documented).
    @Test func swiftPOSIXSegmentGoesWithTheLastSwiftUser() throws {
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let swift = SharedMemory(key: key)
        try swift.create(size: 64)
        let qt = try QtPeer("attach", key: key, ["--hold"])
        try qt.expectEvent("ready")
        try swift.detach()
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + key.nativeKey))
        #expect(try qt.finish()["ok"] as? Bool == true)
        Self.removeQtLeftovers(key.lockSemaphoreKey())
        #expect(Traces.of(key).isEmpty)
    }

    /// QSystemSemaphore and SystemSemaphore share one semaphore in both directions.
    @Test(arguments: Backend.allCases)
    func semaphoresInterop(backend: Backend) throws {
        let key = NativeIPCKey.legacy(TestEnvironment.uniqueName(), type: backend.type, kind: .systemSemaphore)
        // Qt creates with 0; Swift releases (from this long-lived process), Qt acquires.
        let qtOwner = try QtPeer("sem-create", key: key, ["--initial", "0", "--hold"])
        try qtOwner.expectEvent("ready")
        let swift = try SystemSemaphore(key: key)
        #expect(!swift.createdSemaphore)
        try swift.release(2)
        let acquirer = try QtPeer("sem-acquire", key: key, ["--count", "2"])
        acquirer.process.closeInput()
        var last = try acquirer.next()
        while last["ok"] == nil { last = try acquirer.next() }
        #expect(last["ok"] as? Bool == true)
        #expect(try !swift.tryAcquire())
        swift.close()
        #expect(try qtOwner.finish()["ok"] as? Bool == true)
        #expect(Traces.of(key).isEmpty, "Qt's owner removed its semaphore")

        // Swift creates with 1; Qt acquires it, and Swift then cannot.
        let mine = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        let holder = try QtPeer("sem-acquire", key: key, ["--count", "1", "--hold"])
        try holder.expectEvent("acquired")
        #expect(try !mine.tryAcquire())
        let result = try holder.finish()
        #expect(result["ok"] as? Bool == true)
        mine.close()
        #expect(Traces.of(key).isEmpty)
    }
}
