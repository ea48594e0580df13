import CShmShim
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Qt's tst_qsystemsemaphore, ported, on both backends; helper processes are `shm-harness debug semaphore`.
@Suite struct SystemSemaphoreTests {
    static func key(_ backend: Backend, _ label: String = #function) -> NativeIPCKey {
        .legacy(TestEnvironment.uniqueName(label), type: backend.type, kind: .systemSemaphore)
    }

    /// The CLI arguments naming a semaphore key for the helper.
    static func cli(_ key: NativeIPCKey) -> [String] { ["--native-key", key.toString()!] }

    @Test(arguments: Backend.allCases)
    func nativeKeyRoundTrip(backend: Backend) throws {
        let key = Self.key(backend)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        #expect(semaphore.key == key)
        #expect(semaphore.createdSemaphore)
        semaphore.close()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func emptyKeyIsAKeyError(backend: Backend) {
        do {
            _ = try SystemSemaphore(key: NativeIPCKey("", type: backend.type))
            Issue.record("an empty key opened")
        } catch {
            #expect(error.code == .keyError)
        }
    }

    @Test(arguments: Backend.allCases)
    func basicAcquire(backend: Backend) throws {
        let semaphore = try SystemSemaphore(key: Self.key(backend), initialValue: 1, mode: .create)
        try semaphore.acquire()
        try semaphore.release()
        #expect(try semaphore.value() == 1)
    }

    @Test(arguments: Backend.allCases)
    func complexAcquire(backend: Backend) throws {
        let semaphore = try SystemSemaphore(key: Self.key(backend), initialValue: 2, mode: .create)
        try semaphore.acquire(); try semaphore.release()
        try semaphore.acquire(); try semaphore.release()
        try semaphore.acquire(); try semaphore.acquire()
        try semaphore.release(); try semaphore.release()
        #expect(try semaphore.value() == 2)
    }

    @Test(arguments: Backend.allCases)
    func release(backend: Backend) throws {
        let semaphore = try SystemSemaphore(key: Self.key(backend), initialValue: 0, mode: .create)
        try semaphore.release(); try semaphore.release()
        try semaphore.acquire(); try semaphore.acquire()
        try semaphore.release(); try semaphore.release()
        try semaphore.release(0)
        #expect(try semaphore.value() == 2)
        #expect(throws: SharedMemoryError.self) { try semaphore.release(-1) }
    }

    @Test(arguments: Backend.allCases)
    func twoSemaphores(backend: Backend) throws {
        let key = Self.key(backend)
        let first = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        let second = try SystemSemaphore(key: key)
        #expect(!second.createdSemaphore)
        try first.acquire(); try second.release()
        try first.acquire(); try second.release()
        #expect(try first.value() == 1)
    }

    @Test(arguments: Backend.allCases)
    func tryAcquireAndTimeout(backend: Backend) throws {
        let semaphore = try SystemSemaphore(key: Self.key(backend), initialValue: 0, mode: .create)
        #expect(try !semaphore.tryAcquire())
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try semaphore.acquire(timeout: .milliseconds(200))
            Issue.record("acquire on 0 succeeded")
        } catch {
            #expect(error.code == .lockError)
        }
        #expect(clock.now - start >= .milliseconds(150))
        try semaphore.release()
        #expect(try semaphore.tryAcquire())
    }

    /// Divergence: Qt's `Create` mode resets an existing semaphore (`SETVAL` / `sem_unlink`), breaking the
    /// exclusion of its users. Ours leaves it as it is.
    @Test(arguments: Backend.allCases)
    func createModeNeverResetsAnExistingSemaphore(backend: Backend) throws {
        let key = Self.key(backend)
        let owner = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        try owner.acquire()  // held: the count is 0
        let late = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        #expect(!late.createdSemaphore)
        #expect(try !late.tryAcquire(), "the held lock must stay held")
        try owner.release()
    }

    /// Divergence: Qt's owner removes the semaphore at destruction while others use it. Ours stays until the
    /// last user of this library closes it, and then goes.
    @Test(arguments: Backend.allCases)
    func neverRemovedWhileInUse(backend: Backend) throws {
        let key = Self.key(backend)
        var owner: SystemSemaphore? = try SystemSemaphore(key: key, initialValue: 0, mode: .create)
        let user = try SystemSemaphore(key: key)
        owner = nil
        _ = owner
        #expect(!Traces.of(key).isEmpty, "closed by its creator while another user has it")
        try user.release()
        let reopened = try SystemSemaphore(key: key)
        #expect(!reopened.createdSemaphore)
        #expect(try reopened.tryAcquire(), "the same semaphore, count kept")
        reopened.close()
        user.close()
        #expect(Traces.of(key).isEmpty, "gone with its last user")
    }

    /// basicProcesses: a helper blocked in acquire stays blocked until another helper releases.
    @Test(arguments: Backend.allCases)
    func basicProcesses(backend: Backend) throws {
        let key = Self.key(backend)
        let semaphore = try SystemSemaphore(key: key, initialValue: 0, mode: .create)
        let acquirer = try TestEnvironment.harness(["debug", "semaphore", "acquire", "--announce"] + Self.cli(key))
        try #require(acquirer.readLine(timeout: 30) == "acquiring", "the helper reached acquire: \(acquirer.standardError())")
        try acquirer.expectBlocked()  // acquire on a zero semaphore must block
        if backend == .posix {
            // POSIX releases survive the releaser's exit: a helper process can release.
            let releaser = try TestEnvironment.harness(["debug", "semaphore", "release"] + Self.cli(key))
            #expect(try releaser.wait().exitCode == 0)
        } else {
            // System V undoes a release at the releaser's exit (SEM_UNDO, as in Qt): release from here.
            try semaphore.release()
        }
        #expect(try acquirer.wait(timeout: 10).exitCode == 0)
    }

    /// Negative control of the handshake: a helper whose acquire does not block (count 1) fails `expectBlocked`.
    @Test func theBlockingHandshakeFailsWhenNothingBlocks() throws {
        let key = Self.key(.posix)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        let helper = try TestEnvironment.harness(["debug", "semaphore", "acquire", "--announce"] + Self.cli(key))
        #expect(helper.readLine(timeout: 30) == "acquiring")
        #expect(throws: TestFailure.self) { try helper.expectBlocked(timeout: 10) }
        #expect(try helper.wait(timeout: 10).exitCode == 0)
        try semaphore.release()  // the helper's acquire went through and it exited (a POSIX count is not undone)
        #expect(try semaphore.value() == 1)
    }

    /// processes(1/3/10): N helpers acquire and release concurrently; all finish.
    @Test(arguments: Backend.allCases, [1, 3, 10])
    func processes(backend: Backend, count: Int) throws {
        let key = Self.key(backend)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        var helpers: [ChildProcess] = []
        for _ in 0..<count {
            helpers.append(try TestEnvironment.harness(["debug", "semaphore", "acquire", "--count", "1", "--release-after"] + Self.cli(key)))
        }
        for helper in helpers { #expect(try helper.wait(timeout: 30).exitCode == 0) }
        #expect(try semaphore.value() == 1)
    }

    /// undo (System V only): a helper that exits holding the count gets it restored by the kernel.
    @Test func undo() throws {
        let key = Self.key(.systemV)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        for _ in 0..<2 {
            let helper = try TestEnvironment.harness(["debug", "semaphore", "acquire"] + Self.cli(key))
            #expect(try helper.wait(timeout: 10).exitCode == 0)
        }
        #expect(try semaphore.value() == 1)
    }

    /// initialValue: with 1, one acquire passes and a second blocks.
    @Test(arguments: Backend.allCases)
    func initialValue(backend: Backend) throws {
        let key = Self.key(backend)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1, mode: .create)
        #expect(try semaphore.tryAcquire())
        let blocked = try TestEnvironment.harness(["debug", "semaphore", "acquire", "--announce"] + Self.cli(key))
        try #require(blocked.readLine(timeout: 30) == "acquiring", "the helper reached acquire: \(blocked.standardError())")
        try blocked.expectBlocked()
        try semaphore.release()
        #expect(try blocked.wait(timeout: 10).exitCode == 0)
    }

    @Test func systemVSetsMadeHereAreMarked() throws {
        let key = Self.key(.systemV)
        let semaphore = try SystemSemaphore(key: key, initialValue: 1)
        let ipcKey = try #require(Traces.ftokKey(key))
        let id = semget(ipcKey, 0, 0)
        try #require(id >= 0)
        var nsems: UInt = 0
        var mode: UInt32 = 0
        #expect(shm_shim_semctl_stat(id, nil, nil, &mode, &nsems) == 0)
        #expect(nsems == 2, "Qt uses semaphore 0 only; the second marks sets this library made")
        #expect(mode == 0o600)
        semaphore.close()
    }
}
